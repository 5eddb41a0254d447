from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ErrorKind
from pipeline.core.events import AnswerReused, AttemptEnded
from pipeline.core.models import Failure, Item, Success, Usage
from pipeline.observe.counters import LatencySample, RunStats
from pipeline.observe.summary import RunFacts, error_rate_exceeded, summary_dict
from pipeline.spend.ledger import Ledger
from pipeline.spend.prices import Pricing, shipped_table


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
    facts = RunFacts("job", "0" * 32, 1000.0, 1002.0, "gpt-4o-mini", "http://x/v1", [], {}, {})
    summary = summary_dict(stats, Ledger(Pricing(shipped_table())), facts, 1)
    assert summary["quarantined_by_kind"] == {"invalid_input": 1, "permanent": 1}
    assert summary["tokens"] == {"prompt": 3, "completion": 2, "cached_prompt": 0}
    assert summary["items_per_second"] == 1.5
    assert summary["wall_seconds"] == 2.0
    assert summary["started_at"] == "1970-01-01T00:16:40.000000Z"


def test_cost_is_the_answers_usage_times_the_price_and_unknown_models_are_unpriced() -> None:
    ledger = Ledger(Pricing(shipped_table()))
    ledger.emit(_answered("gpt-4o-mini", Usage(1_000_000, 1_000_000, 2_000_000)))
    ledger.emit(AnswerReused("gpt-4o-mini", Usage(2_000_000, 0, 2_000_000)))
    price = shipped_table().price_of("gpt-4o-mini")
    assert price is not None
    facts = RunFacts("job", "0" * 32, 0.0, 1.0, "gpt-4o-mini", "http://x/v1", [], {}, {})
    cost = summary_dict(RunStats(), ledger, facts, 0)["cost"]
    assert cost["this_attempt"] == round(price.input + price.output, 6)
    assert cost["saved_by_cache"] == round(2 * price.input, 6)
    assert cost["whole_job"] == cost["this_attempt"]
    unknown = Ledger(Pricing(shipped_table()))
    unknown.emit(_answered("my-own-model", Usage(10, 10, 20)))
    facts = RunFacts("job", "0" * 32, 0.0, 1.0, "my-own-model", "http://x/v1", [], {}, {})
    cost = summary_dict(RunStats(), unknown, facts, 0)["cost"]
    assert cost["this_attempt"] is None and cost["whole_job"] is None and cost["price"] is None


def _answered(model: str, usage: Usage) -> AttemptEnded:
    item = Item(0, "in", 1, {}, 0)
    return AttemptEnded(item, 0, 1, 0.0, 200, None, usage, model, 0.1, False)


usages = st.lists(
    st.builds(
        # As answers are read (answers.py): never more cached prompt tokens than prompt ones.
        lambda prompt, completion, cached: Usage(
            prompt, completion, prompt + completion, min(cached, prompt)
        ),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=8,
)


@given(usages=usages, model=st.sampled_from(["gpt-4o-mini", "my-own-model"]))
def test_reuses_told_together_count_as_told_one_by_one(usages: list[Usage], model: str) -> None:
    """A batch's cache hits are one AnswerReused per model: the ledger counts them alike."""
    apart, together = Ledger(Pricing(shipped_table())), Ledger(Pricing(shipped_table()))
    for usage in usages:
        apart.emit(AnswerReused(model, usage))
    together.emit(AnswerReused(model, Usage.total(usages), answers=len(usages)))
    assert together.unpriced_reuses == apart.unpriced_reuses
    assert abs(together.saved_usd - apart.saved_usd) <= 1e-9 * max(1.0, apart.saved_usd)
