import pytest

from pipeline.core.errors import UsageError
from pipeline.core.formats import FileFormat, format_of, without_format_suffix
from pipeline.write.writers import output_format


@pytest.mark.parametrize(
    ("name", "fmt", "stem"),
    [
        ("a.jsonl", FileFormat.JSONL, "a"),
        ("A.NDJSON", FileFormat.JSONL, "A"),
        ("a.json.gz", FileFormat.JSONL_GZ, "a"),
        ("dir.v2/a.jsonl.gz", FileFormat.JSONL_GZ, "dir.v2/a"),
        ("a.parquet", FileFormat.PARQUET, "a"),
        ("a.pq", FileFormat.PARQUET, "a"),
        ("a.csv", None, "a.csv"),
    ],
)
def test_one_table_tells_every_format(name: str, fmt: FileFormat | None, stem: str) -> None:
    assert format_of(name) is fmt
    assert without_format_suffix(name) == stem


def test_an_unknown_output_extension_is_a_usage_error() -> None:
    assert output_format("-") is None
    with pytest.raises(UsageError, match=r"out\.csv"):
        output_format("out.csv")
