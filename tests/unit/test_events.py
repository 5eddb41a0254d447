"""The run's event stream and its consumers: counts come from events alone, in any order."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ErrorKind
from pipeline.core.events import (
    AttemptEnded,
    BatchesCommitted,
    CacheLookedUp,
    CacheOpened,
    CacheStored,
    Event,
    JobResumed,
    RateLimitPaused,
    RequestSent,
    RetryScheduled,
    Stalled,
    TrafficReadings,
)
from pipeline.core.models import Failure, Item, Outcome, Success, Usage
from pipeline.core.tally import Tally
from pipeline.observe.broadcast import Broadcast
from pipeline.observe.counters import RunStats
from pipeline.observe.progress import ProgressFeed
from pipeline.observe.summary import RunFacts, summary_dict
from pipeline.spend.ledger import Ledger
from pipeline.spend.prices import Pricing, shipped_table

ITEM = Item(0, "in.jsonl", 1, {}, 0)
REQUEST_SENT = RequestSent(ITEM, 0, 1, 0.0, 0.0, 0.0, {})
FACTS = RunFacts("job", "0" * 32, 1000.0, 1001.0, "gpt-4o-mini", "http://x/v1", [], {}, {})


def _summary(stats: RunStats) -> dict[str, object]:
    return summary_dict(stats, Ledger(Pricing(shipped_table())), FACTS, 0)


KINDS = [ErrorKind.INVALID_INPUT, ErrorKind.PERMANENT, ErrorKind.TRANSIENT]

outcomes = st.one_of(
    st.builds(
        lambda p, c, cached: Success(ITEM, "x", Usage(p, c, p + c), cached=cached),
        st.integers(0, 1000),
        st.integers(0, 1000),
        st.booleans(),
    ),
    st.sampled_from(KINDS).map(lambda kind: Failure(ITEM, kind, "no")),
)
commits = st.lists(outcomes, max_size=20).map(BatchesCommitted)


@given(st.lists(commits, max_size=10))
def test_committed_outcomes_are_counted_as_if_counted_one_by_one(
    batches: list[BatchesCommitted],
) -> None:
    from_events, one_by_one = RunStats(), RunStats()
    for batch in batches:
        from_events.emit(batch)
        for outcome in batch.outcomes:
            one_by_one.count(outcome)
    assert _summary(from_events) == _summary(one_by_one)
    assert from_events.items == sum(len(batch.outcomes) for batch in batches)


@given(
    st.lists(
        st.sampled_from(["sent", "ok", "429", "retry", "pause", "extend"]),
        max_size=60,
    )
)
def test_traffic_counts_follow_the_events(names: list[str]) -> None:
    events: dict[str, Event] = {
        "sent": REQUEST_SENT,
        "ok": AttemptEnded(ITEM, 0, 1, 0.0, 200, None, None, "m", 0.1, False),
        "429": AttemptEnded(ITEM, 0, 1, 0.0, 429, "rate_limited", None, "m", 0.1, True),
        "retry": RetryScheduled("transient", 1.0),
        "pause": RateLimitPaused(2.0, new_pause=True),
        "extend": RateLimitPaused(0.5, new_pause=False),
    }
    stats = RunStats()
    for name in names:
        stats.emit(events[name])
    seen = Counter(names)
    assert stats.requests == seen["sent"]
    assert stats.rate_limited == seen["429"]
    assert stats.retries == seen["retry"]
    assert stats.traffic.pauses == seen["pause"]
    assert stats.traffic.paused_seconds == 2.0 * seen["pause"] + 0.5 * seen["extend"]
    has_latency = seen["ok"] + seen["429"] > 0
    assert (stats.latencies.percentile(0.5) is not None) == has_latency


@given(st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_the_lowest_concurrency_is_the_lowest_ever_read(levels: list[int]) -> None:
    stats = RunStats()
    for level in levels:
        stats.emit(TrafficReadings(level, 600.0, None, 0))
    assert stats.traffic.concurrency == levels[-1]
    assert stats.traffic.lowest_concurrency == min(levels)


def test_cache_counts_exist_only_once_a_cache_is_opened() -> None:
    stats = RunStats()
    stats.emit(CacheLookedUp(hits=3, misses=1))
    assert stats.cache is None
    stats.emit(CacheOpened("/tmp/cache"))
    stats.emit(CacheLookedUp(hits=3, misses=1))
    stats.emit(CacheStored(stored=1, failed=0))
    assert stats.cache is not None
    assert (stats.cache.hits, stats.cache.misses, stats.cache.stored) == (3, 1, 1)


def test_a_resumed_job_counts_earlier_attempts_in_the_job_and_not_in_this_attempt() -> None:
    stats = RunStats()
    stats.emit(JobResumed(Tally(10, 8, 2, 100, 50, Counter(permanent=2))))
    stats.emit(BatchesCommitted([Success(ITEM, "x", Usage(7, 3, 10))]))
    summary: dict[str, Any] = _summary(stats)
    assert summary["whole_job"]["items"] == 11 and summary["resumed"] == 10
    assert summary["this_attempt"]["items"] == 1
    assert summary["this_attempt"]["tokens"] == {"prompt": 7, "completion": 3, "cached_prompt": 0}
    assert summary["whole_job"]["quarantined_by_kind"] == {"permanent": 2}


class _Display:
    def __init__(self) -> None:
        self.told: list[object] = []

    def resumed(self, stats: RunStats) -> None:
        self.told.append(("resumed", stats.resumed))

    def update(self, stats: RunStats, committed: BatchesCommitted) -> None:
        self.told.append(stats.items)

    def tick(self, stats: RunStats, at: float, stall: Stalled | None) -> None:
        self.told.append(("tick", at))

    def stalled(self, stall: Stalled) -> None:
        self.told.append(stall.describe())


def test_the_progress_feed_sees_counts_that_include_the_commit_it_reports() -> None:
    stats, display = RunStats(), _Display()
    events = Broadcast(stats, ProgressFeed(display, stats))
    committed: list[Outcome] = [Success(ITEM, "x", Usage(1, 1, 2))] * 3
    events.emit(REQUEST_SENT)  # not a change the display is told about
    events.emit(BatchesCommitted(committed))
    events.emit(Stalled(12.0, 11.0, "answers to 1 request", None, failing=False))
    assert display.told == [
        3,
        "stalled for 11s, waiting for answers to 1 request; last error: none",
    ]


class _Keeper:
    """Keeps what it is given; takes the kinds given (None: every kind)."""

    def __init__(self, takes: frozenset[type] | None) -> None:
        self.takes = takes
        self.kept: list[Event] = []

    def emit(self, event: Event) -> None:
        self.kept.append(event)


EVENT_KINDS = [
    CacheOpened("cache"),
    CacheStored(1, 0),
    Stalled(0.0, 60.0, "the endpoint", None, False),
    TrafficReadings(8, None, None, 0),
]
takes_sets = st.one_of(
    st.none(), st.sets(st.sampled_from([type(e) for e in EVENT_KINDS])).map(frozenset)
)


@given(
    st.lists(takes_sets, min_size=1, max_size=4),
    st.lists(st.sampled_from(EVENT_KINDS), max_size=20),
    st.integers(0, 20),
    takes_sets,
)
def test_each_sink_gets_in_order_exactly_the_events_it_takes(
    sink_takes: list[frozenset[type] | None],
    events: list[Event],
    added_after: int,
    late_takes: frozenset[type] | None,
) -> None:
    sinks = [_Keeper(kinds) for kinds in sink_takes]
    late = _Keeper(late_takes)
    broadcast = Broadcast(*sinks)
    for position, event in enumerate(events):
        if position == added_after:
            broadcast.add(late)
        broadcast.emit(event)
    if added_after >= len(events):
        broadcast.add(late)

    def wanted(kinds: frozenset[type] | None, seen: list[Event]) -> list[Event]:
        return [e for e in seen if kinds is None or type(e) in kinds]

    for sink in sinks:
        assert sink.kept == wanted(sink.takes, events)
    assert late.kept == wanted(late_takes, events[added_after:])
    # What the broadcast says it takes: any sink's kinds, or every kind if one takes all.
    expected = (
        None
        if any(k is None for k in [*sink_takes, late_takes])
        else frozenset().union(*sink_takes, late_takes)
    )
    assert broadcast.takes == expected


MIXED_EVENTS = [
    REQUEST_SENT,
    AttemptEnded(ITEM, 0, 1, 0.0, 200, None, Usage(3, 2, 5), "gpt-4o-mini", 0.5, False),
    AttemptEnded(ITEM, 0, 1, 0.0, 429, ErrorKind.RATE_LIMITED, None, "gpt-4o-mini", 0.1, True),
    RetryScheduled("rate_limited", 1.0),
    CacheOpened("c"),
    CacheLookedUp(2, 1),
    CacheStored(1, 0),
    BatchesCommitted([Success(ITEM, "x", Usage(1, 1, 2), cached=True)]),
    RateLimitPaused(1.0, True),
    TrafficReadings(8, 60.0, None, 0),
    Stalled(0.0, 60.0, "the endpoint", None, False),
]


@given(st.lists(st.sampled_from(MIXED_EVENTS), max_size=30))
def test_counts_behind_a_broadcast_are_those_of_every_event_given_directly(
    events: list[Event],
) -> None:
    direct, routed = RunStats(), RunStats()
    prices = Pricing(shipped_table())
    direct_ledger, routed_ledger = Ledger(prices), Ledger(prices)
    broadcast = Broadcast(routed, routed_ledger)
    for event in events:
        direct.emit(event)
        direct_ledger.emit(event)
        broadcast.emit(event)
    assert _summary(routed) == _summary(direct)
    assert routed_ledger.requests == direct_ledger.requests
    assert routed_ledger.job == direct_ledger.job
