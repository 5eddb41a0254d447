from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.models import Item
from pipeline.prepare.batching import batched


def _items(count: int) -> list[Item]:
    return [Item(i, "in.jsonl", i + 1, {"n": i}, i) for i in range(count)]


@given(count=st.integers(0, 500), size=st.integers(1, 60))
def test_batches_keep_every_item_once_in_order(count: int, size: int) -> None:
    batches = list(batched(iter(_items(count)), size))
    flattened = [item.position for batch in batches for item in batch.items]
    assert flattened == list(range(count))
    assert [b.index for b in batches] == list(range(len(batches)))
    assert all(len(b.items) == size for b in batches[:-1])
    assert all(1 <= len(b.items) <= size for b in batches)


def test_batching_is_lazy() -> None:
    consumed = []

    def endless():
        n = 0
        while True:
            consumed.append(n)
            yield Item(n, "in", n, {}, n)
            n += 1

    first = next(batched(endless(), 3))
    assert len(first.items) == 3
    assert len(consumed) == 3
