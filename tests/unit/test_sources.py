import gzip
import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import InputMissing, InputUnreadable, UsageError
from pipeline.read.ids import SeenIds, identify
from pipeline.read.sources import check_inputs, count_items, read_records
from tests.corrupt import gzip_with_a_flipped_byte


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_every_kind_of_bad_line_is_kept_with_its_line_number(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "in.jsonl",
        b'{"id": 1}\nnot json\n[1, 2]\n"text"\n{"id": "\xff\xfe"}\n\n{"id": 2}\n{"a": NaN}\n',
    )
    records = list(read_records([path]))
    assert [r.line for r in records] == [1, 2, 3, 4, 5, 7, 8]
    problems = [r.problem for r in records]
    assert problems[0] is None and problems[5] is None
    assert "not valid JSON" in problems[1]
    assert "JSON list, not an object" in problems[2]
    assert "JSON str, not an object" in problems[3]
    assert "not valid UTF-8" in problems[4]
    assert "not valid JSON" in problems[6]
    assert records[1].raw == "not json"


def test_a_named_pipe_is_read_but_never_counted(tmp_path: Path) -> None:
    pipe = tmp_path / "items.jsonl"
    os.mkfifo(pipe)
    check_inputs([str(pipe)])
    assert count_items([str(pipe)]) is None


def test_a_byte_order_mark_does_not_spoil_the_first_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.jsonl", b'\xef\xbb\xbf{"n": 1}\r\n{"n": 2}\r\n')
    assert [r.row for r in read_records([path])] == [{"n": 1}, {"n": 2}]


def test_gzip_and_several_inputs_are_read_in_order(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.jsonl", b'{"n": 1}\n{"n": 2}\n')
    second = str(tmp_path / "b.jsonl.gz")
    with gzip.open(second, "wb") as handle:
        handle.write(b'{"n": 3}\n')
    assert [r.row["n"] for r in read_records([first, second])] == [1, 2, 3]
    assert count_items([first]) == 2
    assert count_items([first, second]) is None


def test_parquet_is_read_in_row_order_with_row_numbers(tmp_path: Path) -> None:
    path = str(tmp_path / "in.parquet")
    pq.write_table(
        pa.table({"id": list(range(3000)), "text": ["x"] * 3000}), path, row_group_size=700
    )
    records = list(read_records([path]))
    assert [r.row["id"] for r in records] == list(range(3000))
    assert records[-1].line == 3000
    assert count_items([path]) == 3000


def test_corrupt_parquet_is_unreadable_as_a_whole(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.parquet", b"PAR1 this is not parquet at all")
    with pytest.raises(InputUnreadable, match=r"broken\.parquet"):
        list(read_records([path]))


def test_truncated_gzip_is_unreadable(tmp_path: Path) -> None:
    data = gzip.compress(b'{"n": 1}\n' * 1000)
    path = _write(tmp_path / "cut.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(InputUnreadable):
        list(read_records([path]))


def test_missing_and_unknown_inputs_are_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InputMissing, match="does not exist"):
        check_inputs([str(tmp_path / "nope.jsonl")])
    with pytest.raises(InputMissing, match="is a directory"):
        check_inputs([_dir(tmp_path)])
    with pytest.raises(UsageError, match="cannot tell the format"):
        check_inputs([_write(tmp_path / "data.csv", b"a,b\n")])


def _dir(tmp_path: Path) -> str:
    directory = tmp_path / "folder.jsonl"
    directory.mkdir()
    return str(directory)


def test_ids_come_from_the_field_or_the_position_and_duplicates_are_flagged(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "in.jsonl",
        b'{"id": "a"}\n{"x": 1}\n{"id": "a"}\n{"id": 7}\n{"id": "7"}\n{"id": null}\n{"id": true}\n',
    )
    seen = SeenIds()
    try:
        items = list(identify(read_records([path]), "id", seen))
    finally:
        seen.close()
    assert [i.id for i in items] == ["a", 1, "a", 7, "7", None, None]
    assert [i.problem is None for i in items] == [True, True, False, True, True, False, False]
    assert "duplicate id 'a'" in items[2].problem
    assert "must be a string or an integer" in items[5].problem


def _words(n: int) -> bytes:
    return (
        hashlib.sha256(b"%d" % n).hexdigest().encode()
    )  # so the data does not compress to nothing


def test_damaged_gzip_is_unreadable_naming_the_file_and_how_far_it_got(tmp_path: Path) -> None:
    lines = b"".join(b'{"n": %d, "text": "%s"}\n' % (n, _words(n)) for n in range(2000))
    path = _write(tmp_path / "flipped.jsonl.gz", gzip_with_a_flipped_byte(lines))
    with pytest.raises(InputUnreadable, match=r"flipped\.jsonl\.gz.* beyond line \d+: the gzip"):
        list(read_records([path]))
    assert count_items([path]) is None  # never read for a total


def test_a_named_pipe_called_parquet_is_refused_by_looking_only(tmp_path: Path) -> None:
    pipe = tmp_path / "items.parquet"
    os.mkfifo(pipe)
    # Were it opened, holding the other end keeps the open from blocking: a bug fails, never hangs.
    holder = os.open(pipe, os.O_RDWR | os.O_NONBLOCK)
    try:
        with pytest.raises(InputUnreadable, match=r"items\.parquet.*not a regular file"):
            check_inputs([str(pipe)])
        assert count_items([str(pipe)]) is None
    finally:
        os.close(holder)


def test_a_device_linked_as_parquet_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "null.parquet"
    link.symlink_to("/dev/null")
    with pytest.raises(InputUnreadable, match="not a regular file"):
        check_inputs([str(link)])


def test_a_pretty_printed_json_array_gives_one_record_per_element(tmp_path: Path) -> None:
    text = b'\xef\xbb\xbf\n  [\n  {"id": 1, "score": 1.5},\n  {"id": 2, "big": 1e300},\n  7,\n'
    text += b"  [1]\n]\n"
    path = _write(tmp_path / "in.json", text)
    records = list(read_records([path]))
    assert [r.line for r in records] == [1, 2, 3, 4]
    assert records[0].row == {"id": 1, "score": 1.5}
    assert type(records[0].row["score"]) is float and type(records[1].row["big"]) is float
    assert (records[2].raw, records[2].problem) == ("7", "element is JSON int, not an object")
    assert (records[3].raw, records[3].problem) == ("[1]", "element is JSON list, not an object")
    assert count_items([path]) is None  # its lines are not its items


def test_a_gzipped_json_array_and_an_empty_one(tmp_path: Path) -> None:
    path = str(tmp_path / "in.json.gz")
    with gzip.open(path, "wb") as handle:
        handle.write(b' [{"n": 1}, {"n": 2}]')
    assert [r.row for r in read_records([path])] == [{"n": 1}, {"n": 2}]
    assert list(read_records([_write(tmp_path / "empty.json", b"[ ]\n")])) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (b'[{"id": 1},\n {"id": 2},\n {"id": }]', "after element 2"),
        (b'[{"id": 1}, {"id": 2}', "after element 2"),
        (b'[{"id": NaN}]', "before its first element"),
        (b'[{"id": 1}] [{"id": 2}]', "after element 1"),
    ],
    ids=["syntax error", "cut short", "NaN", "two arrays"],
)
def test_a_broken_json_array_is_unreadable_with_where(
    tmp_path: Path, text: bytes, where: str
) -> None:
    path = _write(tmp_path / "broken.json", text)
    with pytest.raises(InputUnreadable) as caught:
        list(read_records([path]))
    message = caught.value.message
    assert "broken.json" in message and where in message and "\n" not in message


def test_a_json_file_of_lines_is_still_read_as_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "lines.json", b'\n\n{"id": 1}\n\n{"id": 2}\nnot json\n')
    records = list(read_records([path]))
    assert [(r.line, r.row) for r in records[:2]] == [(3, {"id": 1}), (5, {"id": 2})]
    assert records[2].line == 6 and records[2].problem is not None
    assert count_items([path]) == 6
