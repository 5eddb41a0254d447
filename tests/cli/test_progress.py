"""The displays of cli/progress.py: lines on a schedule, stalls, resume, JSON."""

import orjson
import pytest

from cli.progress import QUIET_STALL_SECONDS, LineDisplay, LogSettings, QuietDisplay
from pipeline.core.errors import ErrorKind
from pipeline.core.events import BatchesCommitted, Stalled
from pipeline.core.models import Failure, Item, Success, Usage
from pipeline.core.tally import Tally
from pipeline.observe.counters import RunStats


def _stall(at: float, failing: bool) -> Stalled:
    return Stalled(at, at, "the endpoint to recover", "HTTP 503: overloaded", failing)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_a_line_every_interval_whether_or_not_anything_finished(capsys) -> None:
    now = [100.0]
    display = LineDisplay(LogSettings(every=5.0), clock=lambda: now[0])
    display.set_total(1000)
    stats = RunStats(items=50)
    display.tick(stats, 0.0)  # too soon after the start
    now[0] = 106.0
    stats.items = 600
    stats.retries = 2
    stats.traffic.concurrency = 8
    display.tick(stats, 0.0)
    now[0] = 107.0
    display.tick(stats, 0.0)  # too soon after the last line
    now[0] = 112.0
    display.tick(stats, 0.0)  # nothing finished since: a line all the same
    lines = _lines(capsys)
    assert len(lines) == 2
    first = lines[0]
    assert first.startswith("sluice: 20")  # a UTC timestamp
    assert "Z 600/1,000 items (60%), 100/s, ETA 4s" in first
    assert "2 retries, 0 429s, concurrency 8" in first


def test_a_stalled_run_says_what_it_waits_for_in_its_lines(capsys) -> None:
    now = [0.0]
    display = LineDisplay(LogSettings(every=5.0), clock=lambda: now[0])
    display.stalled(_stall(10.0, failing=True))  # the engine's report, said at once
    now[0] = 6.0
    display.tick(RunStats(), 6.0, _stall(16.0, failing=True))  # the stall as it is now
    now[0] = 12.0
    display.tick(RunStats(), 12.0, None)  # moving again
    said, line, moving = _lines(capsys)
    assert said.startswith("sluice: stalled for 10s")
    assert "stalled for 16s, waiting for the endpoint to recover; last error: HTTP 503" in line
    assert "stalled" not in moving


def test_rate_and_eta_count_this_attempt_only_after_a_resume(capsys) -> None:
    now = [0.0]
    display = LineDisplay(LogSettings(every=1.0), clock=lambda: now[0])
    display.set_total(1000)
    stats = RunStats()
    earlier = Tally(items=800, succeeded=800)
    stats.earlier = earlier
    stats.add(earlier)
    display.resumed(stats)
    stats.items = 900  # 100 done by this attempt in 10 s
    now[0] = 10.0
    display.tick(stats, 10.0)
    resuming, progress = _lines(capsys)
    assert resuming == "sluice: resuming: 800 of 1,000 items already done"
    assert "900/1,000 items (90%), 10/s, ETA 10s" in progress


def test_json_lines_are_objects_with_the_trace_id(capsys) -> None:
    now = [0.0]
    display = LineDisplay(LogSettings(json=True, every=1.0, trace_id="ab" * 16), lambda: now[0])
    now[0] = 2.0
    display.tick(RunStats(items=4), 2.0)
    display.say("warning: something", level="warning")
    records = [orjson.loads(line) for line in _lines(capsys)]
    assert [r["level"] for r in records] == ["info", "warning"]
    assert all(r["trace_id"] == "ab" * 16 and r["time"].endswith("Z") for r in records)
    assert records[0]["event"] == "progress" and records[0]["done"] == 4


def test_verbose_says_each_commit(capsys) -> None:
    display = LineDisplay(LogSettings(verbose=True))
    item = Item(0, "in.jsonl", 1, {}, 0)
    outcomes = [Success(item, "x", Usage()), Failure(item, ErrorKind.PERMANENT, "no")]
    display.update(RunStats(), BatchesCommitted(outcomes * 2, [7, 8], 1.0, [1, 3]))
    assert _lines(capsys) == [
        "sluice: batch 7 committed: 1 item, 0 quarantined",
        "sluice: batch 8 committed: 3 items, 2 quarantined",
    ]


def test_quiet_says_only_failing_stalls_and_seldom(capsys) -> None:
    display = QuietDisplay()
    display.stalled(_stall(10.0, failing=False))  # slow is not an error
    for at in (20.0, 30.0, 40.0, 50.0, 60.0):
        display.stalled(_stall(at, failing=True))
    display.tick(RunStats(items=5), 70.0)
    lines = _lines(capsys)
    assert [line.split(",")[0] for line in lines] == [
        "sluice: stalled for 20s",
        f"sluice: stalled for {20 + QUIET_STALL_SECONDS:.0f}s",
    ]
