"""The sample inputs are what scripts/make_samples.py makes from its phrase tables."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]


def test_regenerating_the_samples_reproduces_them(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "make_samples.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, timeout=120)
    for name in ("reviews.jsonl", "bad_lines.jsonl"):
        assert (tmp_path / name).read_bytes() == (ROOT / "sample_data" / name).read_bytes(), name
    # Parquet's bytes name the pyarrow version that wrote them (a newer one may lay pages
    # out differently), so the Parquet file is compared by schema and rows.
    made, shipped = (pq.read_table(d / "reviews.parquet") for d in (tmp_path, ROOT / "sample_data"))
    assert made.schema == shipped.schema and made.equals(shipped)
    assert made.num_rows == 300
    # gzip's bytes depend on the zlib that wrote them: compared unpacked.
    name = "reviews_10k.jsonl.gz"
    unpacked = (gzip.decompress((d / name).read_bytes()) for d in (tmp_path, ROOT / "sample_data"))
    assert next(unpacked) == next(unpacked)
