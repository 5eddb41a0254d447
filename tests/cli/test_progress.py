from cli.progress import QUIET_STALL_SECONDS, PlainProgress, QuietProgress
from pipeline.core.events import Stalled
from pipeline.observe.counters import RunStats


def test_plain_progress_prints_one_line_per_interval(capsys) -> None:
    now = [100.0]
    progress = PlainProgress(clock=lambda: now[0])
    progress.set_total(1000)
    stats = RunStats(items=50)
    progress.update(stats)  # too soon after the start
    now[0] = 106.0
    stats.items = 600
    progress.update(stats)
    now[0] = 107.0
    progress.update(stats)  # too soon after the last line
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["sluice: 600/1,000 items done, 0 quarantined, 100 items/s"]


def _stall(at: float, failing: bool) -> Stalled:
    return Stalled(at, at, "the endpoint to recover", "HTTP 503: overloaded", failing)


def test_plain_progress_says_every_stall_it_is_told(capsys) -> None:
    progress = PlainProgress()
    progress.stalled(_stall(10.0, failing=False))
    progress.stalled(_stall(20.0, failing=True))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "sluice: stalled for 10s, waiting for the endpoint to recover; "
        "last error: HTTP 503: overloaded",
        "sluice: stalled for 20s, waiting for the endpoint to recover; "
        "last error: HTTP 503: overloaded",
    ]


def test_quiet_progress_says_only_failing_stalls_and_seldom(capsys) -> None:
    progress = QuietProgress()
    progress.stalled(_stall(10.0, failing=False))  # slow is not an error
    for at in (20.0, 30.0, 40.0, 50.0, 60.0):
        progress.stalled(_stall(at, failing=True))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "sluice: stalled for 20s",
        f"sluice: stalled for {20 + QUIET_STALL_SECONDS:.0f}s",
    ]
