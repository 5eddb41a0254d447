"""Damaged files for tests: real gzip data with one byte flipped."""

from __future__ import annotations

import gzip
import zlib


def gzip_with_a_flipped_byte(data: bytes) -> bytes:
    """`data` gzipped, with one byte of the deflate stream flipped from the middle on.

    The byte is the first whose flip zlib itself notices (zlib.error): a flip
    inside literal data only shows as gzip's CRC mismatch at the very end.
    """
    compressed = gzip.compress(data, mtime=0)
    for at in range(len(compressed) // 2, len(compressed) - 8):  # the last 8: CRC and size
        damaged = bytearray(compressed)
        damaged[at] ^= 0xFF
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            return bytes(damaged)
        except (OSError, EOFError):
            continue
    raise AssertionError("no flipped byte that zlib notices")
