from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ErrorKind
from pipeline.core.models import Failure, Item, Success, Usage
from pipeline.observe.counters import LatencySample, RunStats
from pipeline.observe.summary import error_rate_exceeded, summary_dict


@given(st.lists(st.floats(0, 100), max_size=300), st.integers(1, 50))
def test_latency_sample_stays_bounded_and_reports_observed_values(values, size) -> None:
    sample = LatencySample(size=size)
    for value in values:
        sample.add(value)
    p50 = sample.percentile(0.5)
    if not values:
        assert p50 is None
    else:
        assert p50 in values
        assert len(sample._values) == min(size, len(values))


def test_counts_and_error_rate() -> None:
    item = Item(0, "in", 1, {}, 0)
    stats = RunStats()
    stats.count(Success(item, "x", Usage(3, 2, 5)))
    stats.count(Failure(item, ErrorKind.PERMANENT, "no"))
    stats.count(Failure(item, ErrorKind.INVALID_INPUT, "bad"))
    assert stats.failed == 2
    assert error_rate_exceeded(stats, 0.5)
    assert not error_rate_exceeded(stats, 0.7)
    summary = summary_dict(stats, 2.0, 1)
    assert summary["quarantined_by_kind"] == {"invalid_input": 1, "permanent": 1}
    assert summary["tokens"] == {"prompt": 3, "completion": 2}
    assert summary["items_per_second"] == 1.5
