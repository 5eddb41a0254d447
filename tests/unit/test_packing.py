"""Packing embeddings inputs, and sharing a pack's billed tokens out (pure)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pipeline.prepare.packing import Packer, PackLimits, shares


@given(
    sizes=st.lists(st.integers(0, 500), max_size=300),
    inputs=st.integers(1, 70),
    tokens=st.integers(1, 2_000),
)
def test_packs_keep_every_entry_in_order_within_the_limits(
    sizes: list[int], inputs: int, tokens: int
) -> None:
    packer: Packer[int] = Packer(PackLimits(inputs, tokens))
    packs: list[list[int]] = []
    for index, size in enumerate(sizes):
        packs.extend(packer.add(index, size))
    last = packer.flush()
    if last:
        packs.append(last)
    assert [index for pack in packs for index in pack] == list(range(len(sizes)))
    for pack in packs:
        assert 1 <= len(pack) <= inputs
        if len(pack) > 1:  # an input over the budget goes alone
            assert sum(sizes[i] for i in pack) <= tokens + sizes[pack[-1]]
            assert sum(sizes[i] for i in pack[:-1]) < tokens


@given(
    sizes=st.lists(st.integers(1, 100), min_size=1, max_size=100),
    inputs=st.integers(1, 70),
)
def test_full_packs_are_as_large_as_the_inputs_allow(sizes: list[int], inputs: int) -> None:
    packer: Packer[int] = Packer(PackLimits(inputs, 10**9))
    packs = [pack for index, size in enumerate(sizes) for pack in packer.add(index, size)]
    assert all(len(pack) == inputs for pack in packs)
    assert len(packer) == len(sizes) % inputs


@given(total=st.integers(0, 10**6), weights=st.lists(st.integers(0, 10**4), max_size=80))
def test_shares_add_up_and_stay_within_one_of_the_exact_split(
    total: int, weights: list[int]
) -> None:
    parts = shares(total, weights)
    assert len(parts) == len(weights)
    if not weights:
        return
    assert sum(parts) == total
    assert all(part >= 0 for part in parts)
    weight = sum(weights)
    if weight:
        for part, w in zip(parts, weights, strict=True):
            assert abs(part - Fraction(total * w, weight)) < 1
