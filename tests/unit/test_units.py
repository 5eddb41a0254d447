"""Sizes and durations as people write them on the command line."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.units import format_size, parse_duration, parse_size
from pipeline.core.errors import UsageError

SIZE_UNITS = {
    "": 1,
    "B": 1,
    "k": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def _cased(data: st.DataObject, unit: str) -> str:
    """The unit with each letter drawn in upper or lower case."""
    return "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in unit)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2048", 2048),
        ("10k", 10_000),
        ("500MB", 500_000_000),
        ("5GB", 5_000_000_000),
        ("1GiB", 2**30),
        ("1.5GB", 1_500_000_000),
        ("0.1KB", 100),
        (" 5 gb ", 5_000_000_000),
        ("1b", 1),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read size"),
        ("lots", "cannot read size"),
        ("5 G B", "cannot read size"),
        ("1.2.3MB", "cannot read size"),
        ("-5MB", "negative"),
        ("0", "at least 1 byte"),
        ("0GB", "at least 1 byte"),
        ("0.1", "at least 1 byte"),
        ("5XB", "unknown size unit"),
        ("9" * 30 + "PB", "too large"),
    ],
)
def test_nonsense_sizes_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        parse_size(text)
    assert raised.value.exit_code == 2


@given(st.integers(1, 10**6), st.sampled_from(sorted(SIZE_UNITS)), st.data())
def test_a_whole_number_of_any_unit_in_any_case(n: int, unit: str, data: st.DataObject) -> None:
    assert parse_size(f"{n}{_cased(data, unit)}") == n * SIZE_UNITS[unit]


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_more_of_a_unit_is_more_bytes(a: int, b: int, unit: str) -> None:
    assert (parse_size(f"{a}{unit}") < parse_size(f"{b}{unit}")) == (a < b)


@given(st.integers(1, 10**6), st.sampled_from("KMGT"))
def test_binary_units_are_larger_than_decimal_ones(n: int, prefix: str) -> None:
    assert parse_size(f"{n}{prefix}iB") > parse_size(f"{n}{prefix}B")


@given(st.integers(1, 10**18))
def test_formatted_sizes_read_back_within_rounding(size: int) -> None:
    # One decimal of the largest fitting unit: off by at most 5% (exact below 1000).
    back = parse_size(format_size(size))
    assert abs(back - size) <= size * 0.051
    if size < 1000:
        assert back == size


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_500_000, "1.5 MB"), (999_999, "1.0 MB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("12h", 43_200.0),
        ("7d", 604_800.0),
        ("1.5h", 5400.0),
        ("2W", 1_209_600.0),
        (".5m", 30.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read duration"),
        ("soon", "cannot read duration"),
        ("1h30m", "cannot read duration"),
        ("-5m", "negative"),
        ("5y", "unknown duration unit"),
        ("9" * 400 + "d", "too long"),
    ],
)
def test_nonsense_durations_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_duration(text)


@given(st.integers(0, 10**9), st.sampled_from(sorted(DURATION_UNITS)), st.data())
def test_a_whole_duration_of_any_unit_in_any_case(n: int, unit: str, data: st.DataObject) -> None:
    assert parse_duration(f"{n}{_cased(data, unit)}") == n * DURATION_UNITS[unit]


@given(
    st.decimals(0, 10**6, places=3),
    st.decimals(0, 10**6, places=3),
    st.sampled_from(sorted(DURATION_UNITS)),
)
def test_longer_written_is_longer_read(a: Decimal, b: Decimal, unit: str) -> None:
    shorter, longer = sorted([a, b])
    assert parse_duration(f"{shorter:f}{unit}") <= parse_duration(f"{longer:f}{unit}")
