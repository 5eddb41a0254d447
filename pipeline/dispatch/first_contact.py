"""What the first answers, or their absence, say about the run's settings (pure).

Until anything has answered, the same refusal for every item means the settings
are wrong (exit 78), and failing to connect again and again means the base URL
is wrong or dead (exit 69). Either way the run stops within seconds instead of
failing item after item, or waiting out the breaker in silence.
"""

from __future__ import annotations

from collections import Counter

from pipeline.core.errors import ConfigError, ServiceUnavailable
from pipeline.traffic.retry_policy import Verdict

# This many identical refusals before any answer means the run's settings are wrong.
SAME_REFUSAL_LIMIT = 10
# Refusals that all differ say nothing about the settings; stop counting them.
DISTINCT_REFUSALS_TRACKED = 100
# Failing to connect this many times before anything ever answered: a wrong or dead URL.
UNREACHABLE_LIMIT = 3
# Verdict.code of an attempt that never reached the server (refused, unresolvable, TLS).
CONNECT_FAILED = "connect_failed"


class FirstContact:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._reached = False  # any HTTP response at all, even an error
        self._answered = False  # a usable answer
        self.failed_connections = 0  # before anything answered
        self._same_refusals: Counter[str] = Counter()

    def on_response(self) -> None:
        self._reached = True

    def on_answer(self) -> None:
        self._answered = True

    def unreached(self, verdict: Verdict) -> bool:
        """The attempt could not connect, and nothing has ever answered at that URL:
        the endpoint's fault, not the item's."""
        return verdict.code == CONNECT_FAILED and not self._reached

    def check_connection(self, verdict: Verdict) -> None:
        """Raises once connecting failed UNREACHABLE_LIMIT times before any answer."""
        if not self.unreached(verdict):
            return
        self.failed_connections += 1
        if self.failed_connections >= UNREACHABLE_LIMIT:
            raise ServiceUnavailable(
                f"nothing answers at {self._base_url}: {verdict.message}. Check --base-url "
                "and that the server is running, then run the same command again."
            )

    def check_refusal(self, verdict: Verdict) -> None:
        """The same refusal for every item, before any answer, is the settings' fault."""
        if self._answered or len(self._same_refusals) > DISTINCT_REFUSALS_TRACKED:
            return
        self._same_refusals[verdict.message] += 1
        if self._same_refusals[verdict.message] >= SAME_REFUSAL_LIMIT:
            raise ConfigError(
                f"the first {SAME_REFUSAL_LIMIT} requests were all refused with "
                f"{verdict.message}; check --model, --base-url and -O options"
            )
