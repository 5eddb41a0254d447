from hypothesis import given
from hypothesis import strategies as st

from pipeline.identity import SeenIds, identify
from pipeline.sources import Record

ids = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from(["a", "b", "7", ""]))


@given(st.lists(ids, max_size=40))
def test_every_record_becomes_one_item_and_only_repeats_are_duplicates(values) -> None:
    records = [
        Record("in.jsonl", n + 1, {} if value is None else {"id": value})
        for n, value in enumerate(values)
    ]
    seen = SeenIds()
    try:
        items = list(identify(records, "id", seen))
    finally:
        seen.close()
    assert [i.position for i in items] == list(range(len(values)))
    accepted: set[str] = set()
    for item, value in zip(items, values, strict=True):
        if value == "":
            assert "is empty" in (item.problem or "")
            continue
        key = repr((type(item.id), item.id))
        if item.problem is None:
            assert key not in accepted
            accepted.add(key)
            assert item.id == (item.position if value is None else value)
        else:
            assert "duplicate id" in item.problem and key in accepted
