"""One definition of the job's counts: tallies add up, subtract back, and survive a part header."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ErrorKind
from pipeline.core.models import Failure, Item, Outcome, Success, Usage
from pipeline.core.tally import Tally
from pipeline.state.part_header import PartHeader

ITEM = Item(0, "in.jsonl", 1, {}, 0)

outcomes = st.one_of(
    st.builds(
        lambda p, c, cached: Success(ITEM, "x", Usage(p, c, p + c), cached=cached),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.booleans(),
    ),
    st.sampled_from(list(ErrorKind)).map(lambda kind: Failure(ITEM, kind, "no")),
)


@given(st.lists(outcomes), st.lists(outcomes))
def test_the_tally_of_two_runs_is_the_sum_of_their_tallies(
    first: list[Outcome], second: list[Outcome]
) -> None:
    whole = Tally.of(first + second)
    summed = Tally.of(first)
    summed.add(Tally.of(second))
    assert summed == whole
    assert whole.minus(Tally.of(first)) == Tally.of(second)
    assert whole.items == whole.succeeded + whole.failed


@given(st.lists(outcomes))
def test_cached_answers_count_as_successes_without_tokens(batch: list[Outcome]) -> None:
    tally = Tally.of(batch)
    paid = [o for o in batch if isinstance(o, Success) and not o.cached]
    assert tally.cached == sum(1 for o in batch if isinstance(o, Success) and o.cached)
    assert tally.prompt_tokens == sum(o.usage.prompt_tokens for o in paid)
    assert tally.completion_tokens == sum(o.usage.completion_tokens for o in paid)


@given(st.lists(outcomes))
def test_a_part_header_gives_back_the_tally_it_was_written_with(batch: list[Outcome]) -> None:
    tally = Tally.of(batch)
    header = PartHeader(
        batch=0,
        items=tally.items,
        digest="d",
        succeeded=tally.succeeded,
        cached=tally.cached,
        prompt_tokens=tally.prompt_tokens,
        completion_tokens=tally.completion_tokens,
        results_bytes=0,
        quarantine_bytes=0,
        committed_at=0.0,
        quarantined=dict(tally.quarantined),
    )
    assert PartHeader.decode(header.sealed(b"", b"").encode()).tally() == tally
