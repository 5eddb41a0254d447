from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.models import Record
from pipeline.read.ids import SeenIds, identify

NO_FIELD = "<no id field>"
INVALID = [None, 1.5, True, False, "", [1]]
ids = st.one_of(
    st.just(NO_FIELD),
    st.integers(-5, 5),
    st.sampled_from(["a", "b", "7"]),
    st.sampled_from(INVALID),
)


def _identified(records: list[Record]) -> list:
    seen = SeenIds()
    try:
        return list(identify(records, "id", seen))
    finally:
        seen.close()


def _is_invalid(value: object) -> bool:
    return any(value is bad or (value == bad and type(value) is type(bad)) for bad in INVALID)


@given(st.lists(ids, max_size=40))
def test_every_record_becomes_one_item_and_only_repeats_are_duplicates(values) -> None:
    records = [
        Record("in.jsonl", n + 1, {} if value == NO_FIELD else {"id": value})
        for n, value in enumerate(values)
    ]
    items = _identified(records)
    assert [i.position for i in items] == list(range(len(values)))
    accepted: set[str] = set()
    for item, value in zip(items, values, strict=True):
        if _is_invalid(value):
            # No id at all: a position in its place could be another item's real id.
            assert item.id is None and item.problem is not None
            assert "is empty" in item.problem or "must be a string or an integer" in item.problem
            continue
        key = repr((type(item.id), item.id))
        if item.problem is None:
            assert key not in accepted
            accepted.add(key)
            assert item.id == (item.position if value == NO_FIELD else value)
        else:
            assert "duplicate id" in item.problem and key in accepted


def test_a_retried_item_that_had_no_valid_id_gets_none() -> None:
    record = Record("in.jsonl", 3, {"id": 1.5}, problem="id field 'id' must be ...")
    record.without_id = True
    (item,) = _identified([record])
    assert (item.id, item.problem, item.line) == (None, "id field 'id' must be ...", 3)
    bare = Record("in.jsonl", 4, {"text": "x"}, without_id=True)
    (item,) = _identified([bare])
    assert item.id is None and item.problem == "the item has no valid id"


@given(st.lists(st.lists(st.integers(0, 6) | st.sampled_from(["a", "0", "b"]), max_size=12)))
def test_seen_ids_reports_exactly_the_repeats_a_set_would(lists: list[list[int | str]]) -> None:
    seen, model = SeenIds(), set()
    try:
        for item_ids in lists:
            expected = set()
            for index, item_id in enumerate(item_ids):
                key = (type(item_id), item_id)
                if key in model:
                    expected.add(index)
                model.add(key)
            assert seen.add_many(item_ids) == expected
    finally:
        seen.close()


def test_seen_ids_take_more_ids_at_once_than_one_sqlite_statement_may_bind() -> None:
    # `sluice plan --batch-size 50000` checks a whole batch's cache keys in one call; a
    # statement binds at most 32,766 values in SQLite's default build (999 before 3.32).
    seen = SeenIds()
    try:
        many = [f"id-{n}" for n in range(40_000)]
        assert seen.add_many([*many, "id-7", "new"]) == {40_000}
        assert seen.add_many(["new", "newer", "id-39999"]) == {0, 2}
    finally:
        seen.close()
