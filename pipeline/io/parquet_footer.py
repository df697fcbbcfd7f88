"""The size of a Parquet file's footer, read from the file's last 8 bytes before pyarrow parses the footer.

pyarrow parses a file's whole footer (its schema, each row group's column chunks and their statistics) at about
15 times its size in memory before any row is read: a 61 MB file of 3,000 one-row row groups of 203 columns has a
37 MB footer and took 541 MB to open. Our files (a release's shards, its rejections, ledger and near-duplicate index, a
metadata table of a few columns) have footers of kilobytes; every reader of a file from outside (an input table, a
previous release, a ledger) refuses one over MAX_FOOTER_BYTES unparsed.
"""

from __future__ import annotations

from typing import Any

MAX_FOOTER_BYTES = 16 * 1024 * 1024
_MAGIC = b"PAR1"


class FooterTooLarge(ValueError):
    """A Parquet file whose footer is over MAX_FOOTER_BYTES: refused before pyarrow parses it."""


def footer_problem(tail: bytes) -> str | None:
    """Why a file ending in `tail` (at least its last 8 bytes) is refused, or None. A file too short to hold a footer,
    or not ending in "PAR1", is left to pyarrow to refuse."""
    if len(tail) < 8 or tail[-4:] != _MAGIC:
        return None
    footer = int.from_bytes(tail[-8:-4], "little")
    if footer <= MAX_FOOTER_BYTES:
        return None
    return (f"its Parquet footer is {footer:,} bytes, over the limit of {MAX_FOOTER_BYTES:,} (a file of fewer, larger "
            "row groups has a smaller one)")


def check_footer(handle: Any) -> None:
    """FooterTooLarge for a seekable file whose footer is over MAX_FOOTER_BYTES; the handle is left at its start."""
    handle.seek(0, 2)
    size = handle.tell()
    if size >= 12:  # "PAR1", a footer, its length and "PAR1": anything shorter is pyarrow's to refuse
        handle.seek(size - 8)
        problem = footer_problem(handle.read(8))
        if problem:
            raise FooterTooLarge(problem)
    handle.seek(0)
