"""Rate limits shared through a file: two limiters on one file behave as one limiter."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.protocol.headers import LimitReading
from pipeline.traffic.limiter import Limits, RateLimiter
from pipeline.traffic.shared_limits import SharedLimitsFile, SharedRateLimiter, account_key


class Wall:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _pair(path: Path, limits: Limits, wall: Wall) -> tuple[SharedRateLimiter, SharedRateLimiter]:
    key = account_key("http://127.0.0.1:1/v1", "sk-test", "m")
    first = SharedRateLimiter(SharedLimitsFile(str(path)), key, limits, wall)
    second = SharedRateLimiter(SharedLimitsFile(str(path)), key, limits, wall)
    return first, second


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.floats(0, 2), st.integers(0, 500)), min_size=1, max_size=40
    )
)
def test_two_processes_on_one_file_wait_as_one_process_would(
    tmp_path_factory: object, steps: list[tuple[bool, float, int]]
) -> None:
    path = tmp_path_factory.mktemp("shared") / "limits.sqlite"  # type: ignore[attr-defined]
    wall = Wall()
    limits = Limits(rpm=600, tpm=60_000)
    first, second = _pair(path, limits, wall)
    alone = RateLimiter(limits, wall.now)
    for use_first, elapsed, tokens in steps:
        wall.now += elapsed
        shared = (first if use_first else second).reserve(tokens, 0.0)
        assert abs(shared - alone.reserve(tokens, wall.now)) < 1e-6


def test_a_pause_and_a_learned_limit_reach_the_other_process(tmp_path: Path) -> None:
    wall = Wall()
    first, second = _pair(tmp_path / "limits.sqlite", Limits(), wall)
    assert second.per_minute("requests") is None
    first.observe({"requests": LimitReading(per_minute=120, remaining=2, reset=None)}, 0.0)
    second.reserve(0, 0.0)  # a turn loads what the other learned
    assert second.per_minute("requests") == 120
    first.pause(5.0, ["requests"], 0.0)
    assert second.paused_for(0.0) == 5.0
    wall.now += 6
    assert second.paused_for(0.0) == 0.0


def test_the_file_never_holds_the_key(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    wall = Wall()
    first, _ = _pair(path, Limits(rpm=60), wall)
    first.reserve(10, 0.0)
    assert b"sk-test" not in path.read_bytes()
    assert account_key("u", "sk-1", "m") != account_key("u", "sk-2", "m")
