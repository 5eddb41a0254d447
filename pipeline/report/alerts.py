"""Alert rules: what is wrong with a finished run, alone and against the job's history.

Pure: a run's summary and the summaries of earlier runs in, findings out; no
file, clock or network. Each rule and its severity:

    rule             severity                       fires when
    failed_run       critical                       exit code is not 0 (outputs are missing or
                                                    incomplete, or too many items failed)
    error_rate       warning; critical from 50%     quarantined / items > error_rate threshold
    slow_run         warning                        wall_seconds > 3 x the median
    throughput_down  warning                        items_per_second < 0.5 x the median
    cost_up          warning; info when the cost    cost of this attempt > 1.2 x the median
                     per item did not rise (more
                     items, not dearer ones)

The history rules (the last three) compare with the median of the last
`window` earlier runs that are comparable: runs that finished (exit 0 or 1;
a run stopped early says little about a whole run) and had something to do
(a run that found every item already done takes no time and costs nothing).
A rule needs `min_history` such runs that carry its figure; before that it
stays silent. `error_rate` and `failed_run` need no history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from pipeline.core.words import counted, money

Run = Mapping[str, Any]

# Exit codes (README "Exit codes") in the words a failed-run alert uses.
_EXIT_MEANINGS = {
    1: "more items were quarantined than --max-error-rate allows",
    2: "a usage error",
    3: "stopped at a budget",
    65: "an input could not be read",
    66: "an input is missing",
    69: "the service was unavailable",
    70: "an internal error",
    73: "the outputs could not be written",
    75: "a temporary stop: lock held, quota exhausted or a long wait asked",
    77: "the server refused the key",
    78: "a configuration error",
    130: "interrupted",
    143: "terminated",
}
FINISHED_EXIT_CODES = (0, 1)  # every item ended in the results or the quarantine
CRITICAL_ERROR_RATE = 0.5


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """`info`, `warning` or `critical` (any case); ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use info, warning or critical") from None


class Thresholds(NamedTuple):
    error_rate: float = 0.05  # quarantined / items above this is a finding
    slow_factor: float = 3.0  # wall_seconds above this many medians
    cost_increase: float = 0.20  # cost above the median by more than this share
    throughput_factor: float = 0.5  # items_per_second below this many medians
    min_history: int = 3  # comparable earlier runs a history rule needs
    window: int = 10  # the last this many comparable earlier runs make the baseline


DEFAULT_THRESHOLDS = Thresholds()


class Finding(NamedTuple):
    rule: str
    severity: Severity
    message: str
    value: float | None
    baseline: float | None  # the threshold or the median it was held against

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "message": self.message,
            "value": self.value,
            "baseline": self.baseline,
        }


def evaluate(
    run: Run, earlier: Sequence[Run], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[Finding]:
    """Every finding for `run`, most severe first; `earlier` is oldest first."""
    baseline = comparable_window(earlier, thresholds.window)
    candidates = [
        _failed_run(run),
        _error_rate(run, thresholds),
        _slow_run(run, baseline, thresholds),
        _throughput_down(run, baseline, thresholds),
        _cost_up(run, baseline, thresholds),
    ]
    findings = [finding for finding in candidates if finding is not None]
    return sorted(findings, key=lambda finding: -finding.severity)


def at_least(findings: Sequence[Finding], minimum: Severity) -> bool:
    """Whether any finding is as severe as `minimum` or more."""
    return any(finding.severity >= minimum for finding in findings)


def finding_line(finding: Finding) -> str:
    return f"{finding.severity.label}: {finding.message}"


# ---- the figures of a run, read defensively: history lines may come from older versions


def number(run: Run, *keys: str) -> float | None:
    """The finite number at run[k1][k2]..., or None (missing, null, a bool, not a number)."""
    value: Any = run
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def exit_code(run: Run) -> int | None:
    code = number(run, "exit_code")
    return int(code) if code is not None else None


def attempt_items(run: Run) -> float:
    """Items this attempt handled itself (not resumed from an earlier attempt)."""
    return (number(run, "items") or 0.0) - (number(run, "resumed") or 0.0)


def error_rate(run: Run) -> float:
    items = number(run, "items") or 0.0
    return (number(run, "quarantined") or 0.0) / items if items > 0 else 0.0


def cost(run: Run) -> float | None:
    return number(run, "cost", "this_attempt")


def cost_per_item(run: Run) -> float | None:
    paid, items = cost(run), attempt_items(run)
    return paid / items if paid is not None and items > 0 else None


def wall_seconds(run: Run) -> float | None:
    return number(run, "wall_seconds")


def items_per_second(run: Run) -> float | None:
    return number(run, "items_per_second")


def is_comparable(run: Run) -> bool:
    """A run that finished and had something to do: fit to be a baseline."""
    return exit_code(run) in FINISHED_EXIT_CODES and attempt_items(run) > 0


def comparable_window(earlier: Sequence[Run], window: int) -> list[Run]:
    comparable = [run for run in earlier if is_comparable(run)]
    return comparable[-window:] if window > 0 else []


def median_of(runs: Sequence[Run], figure: Callable[[Run], float | None]) -> float | None:
    values = [value for run in runs if (value := figure(run)) is not None]
    return _median(values) if values else None


# ---- the rules


def _failed_run(run: Run) -> Finding | None:
    code = exit_code(run)
    if code == 0:
        return None
    if code is None:
        return Finding("failed_run", Severity.CRITICAL, "the run gave no exit code", None, None)
    meaning = _EXIT_MEANINGS.get(code, "an unknown exit code")
    stopped_by = run.get("stopped_by")
    if code == 3 and isinstance(stopped_by, str):
        meaning += f" ({stopped_by})"
    message = f"the run failed with exit code {code}: {meaning}"
    return Finding("failed_run", Severity.CRITICAL, message, float(code), None)


def _error_rate(run: Run, thresholds: Thresholds) -> Finding | None:
    rate = error_rate(run)
    if rate <= thresholds.error_rate:
        return None
    severity = Severity.CRITICAL if rate >= CRITICAL_ERROR_RATE else Severity.WARNING
    quarantined, items = int(number(run, "quarantined") or 0), int(number(run, "items") or 0)
    message = (
        f"{rate:.1%} of the items were quarantined ({quarantined:,} of "
        f"{counted(items, 'item')}), over the alert threshold of {thresholds.error_rate:.1%}"
    )
    return Finding("error_rate", severity, message, rate, thresholds.error_rate)


def _history_median(
    baseline: Sequence[Run], figure: Callable[[Run], float | None], thresholds: Thresholds
) -> float | None:
    """The median of a figure over the baseline, once enough runs carry it."""
    values = [value for run in baseline if (value := figure(run)) is not None]
    if len(values) < max(thresholds.min_history, 1):
        return None
    return _median(values)


def _median(values: list[float]) -> float:
    # Not statistics.median: importing statistics (with fractions) costs each run that
    # has a history ~3 ms at start, for what is two lines.
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _over_runs(baseline: Sequence[Run]) -> str:
    return f"over the last {counted(len(baseline), 'comparable run')}"


def _slow_run(run: Run, baseline: Sequence[Run], thresholds: Thresholds) -> Finding | None:
    took, median = wall_seconds(run), _history_median(baseline, wall_seconds, thresholds)
    if took is None or median is None or median <= 0 or took <= thresholds.slow_factor * median:
        return None
    message = (
        f"the run took {format_duration(took)}, {took / median:.1f}x the median of "
        f"{format_duration(median)} {_over_runs(baseline)}"
    )
    return Finding("slow_run", Severity.WARNING, message, took, median)


def _throughput_down(run: Run, baseline: Sequence[Run], thresholds: Thresholds) -> Finding | None:
    if attempt_items(run) <= 0:
        return None  # nothing to do: its pace says nothing
    pace, median = items_per_second(run), _history_median(baseline, items_per_second, thresholds)
    if pace is None or median is None or pace >= thresholds.throughput_factor * median:
        return None
    message = (
        f"throughput fell to {pace:,.1f} items/s, {pace / median:.0%} of the median of "
        f"{median:,.1f} items/s {_over_runs(baseline)}"
    )
    return Finding("throughput_down", Severity.WARNING, message, pace, median)


def _cost_up(run: Run, baseline: Sequence[Run], thresholds: Thresholds) -> Finding | None:
    paid, median = cost(run), _history_median(baseline, cost, thresholds)
    if paid is None or median is None or median <= 0:
        return None  # unpriced, or a free baseline (all cached) with nothing to scale
    if paid <= (1 + thresholds.cost_increase) * median:
        return None
    code = currency(run)
    message = (
        f"the run cost {money(paid, code)}, {paid / median - 1:.0%} more than the "
        f"median of {money(median, code)} {_over_runs(baseline)}"
    )
    severity = Severity.WARNING
    per_item, usual = cost_per_item(run), median_of(baseline, cost_per_item)
    if (
        per_item is not None
        and usual is not None
        and per_item <= (1 + thresholds.cost_increase) * usual
    ):
        severity = Severity.INFO
        items, usual_items = attempt_items(run), median_of(baseline, attempt_items) or 0.0
        message += (
            f"; per item it did not rise: {counted(int(items), 'item')} against a median of "
            f"{usual_items:,.0f}"
        )
    return Finding("cost_up", severity, message, paid, median)


def currency(run: Run) -> str:
    block = run.get("cost")
    currency = block.get("currency") if isinstance(block, Mapping) else None
    return currency if isinstance(currency, str) and currency else "USD"


# ---- how figures read in messages and tables


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
