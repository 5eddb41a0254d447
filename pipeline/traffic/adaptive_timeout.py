"""Round-trip statistics, the adaptive attempt timeout and latency spikes (pure).

The timeout follows TCP's retransmission timer (RFC 6298): a smoothed round
trip plus four deviations, scaled generously because a model's answer time
varies with its length, floored, and capped by `--timeout`. A timeout doubles
it until an answer arrives again, so a server that slows down for everyone is
waited for rather than cut off forever.
"""

from __future__ import annotations

WARMUP_SAMPLES = 20
TIMEOUT_MULTIPLIER = 3.0
MIN_TIMEOUT = 5.0
MAX_BACKOFF = 64
SPIKE_FACTOR = 2.0


class LatencyTracker:
    __slots__ = ("_backoff", "baseline", "deviation", "samples", "smoothed")

    def __init__(self) -> None:
        self.samples = 0
        self.smoothed = 0.0
        self.deviation = 0.0
        self.baseline = 0.0
        self._backoff = 1

    def add(self, seconds: float) -> None:
        if self.samples == 0:
            self.smoothed, self.deviation, self.baseline = seconds, seconds / 2, seconds
        else:
            self.deviation += (abs(self.smoothed - seconds) - self.deviation) / 4
            self.smoothed += (seconds - self.smoothed) / 8
            self.baseline += (seconds - self.baseline) / 64
        self.samples += 1
        self._backoff = 1

    def on_timeout(self) -> None:
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    def attempt_timeout(self, ceiling: float) -> float:
        if self.samples < WARMUP_SAMPLES:
            return ceiling
        adaptive = max(MIN_TIMEOUT, TIMEOUT_MULTIPLIER * (self.smoothed + 4 * self.deviation))
        return min(ceiling, adaptive * self._backoff)

    @property
    def spiking(self) -> bool:
        """Recent answers take much longer than the run's norm: the server is queueing."""
        return self.samples >= WARMUP_SAMPLES and self.smoothed > SPIKE_FACTOR * self.baseline

    @property
    def round_trip(self) -> float:
        return self.smoothed
