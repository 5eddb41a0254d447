from cli.progress import PlainProgress
from pipeline.stats import RunStats


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
