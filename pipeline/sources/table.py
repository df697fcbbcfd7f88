"""Read generic metadata tables — CSV, TSV, Parquet or JSON lines — whose columns are mapped to ours, as one stage.

Each format has its reader (`delimited` for CSV and TSV, `parquet_rows`, JSON lines here), each row goes to
`table_row.parse_row` (the layout, our fields, what a row must hold), and every data row ends as a `Photo` or as a
`Rejection` named by its id, else by its "file:line" (Parquet and JSON lines count rows from 1, text tables count
the header as line 1). Values are typed by the format: a JSON or Parquet number may be an id, never a URL or a title.
`sniff` is the launch check: a file that is not what --input_format says is refused before the job runs.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam

from pipeline.records import Photo, Rejection
from pipeline.sources.delimited import content_lines, delimited_rows, header_of
from pipeline.sources.input_files import SNIFFED_ROWS, VALUE_REASONS, file_label, read_numbered_lines, spread_files
from pipeline.sources.parquet_rows import parquet_columns, parquet_rows
from pipeline.sources.row_bound import bounded_rows
from pipeline.sources.table_row import (
    DESCRIBED,
    FIELDS,
    FILE_ERRORS,
    STAGE,
    TableLayout,
    header_problem,
    named_missing,
    parsed,
    rejection,
    shown,
    table_layout,
)
from pipeline.stage import KEPT, REJECTED, StageOutput, reject

__all__ = ["ReadTable", "TableLayout", "read_rows", "sniff", "table_layout"]


def _json_rows(path: str, layout: TableLayout, checked: bool, name: str | None = None,
               ) -> Iterator[Photo | Rejection]:
    # JSON lines end at a \n: a lone CR is whitespace inside a line's object (JSON strings hold none unescaped)
    for item in content_lines(read_numbered_lines(path, checked=checked, lone_cr=False, name=name)):
        if isinstance(item, Rejection):
            yield item
            continue
        ref, raw = item
        try:
            value = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_object)
        except UnicodeDecodeError as err:
            yield rejection(ref, "bad_encoding", f"invalid UTF-8 at byte {err.start}")
            continue
        except (ValueError, RecursionError) as err:  # JSONDecodeError, a 5,000-digit number, deep nesting
            yield rejection(ref, "malformed_row", f"not JSON: {type(err).__name__}: {err}"[:300])
            continue
        if not isinstance(value, dict):
            yield rejection(ref, "malformed_row", f"a JSON {type(value).__name__}, not an object")
            continue
        ours = {layout.column(name) for name in FIELDS}
        twice = next((key for key in getattr(value, "repeated", ()) if key in ours), None)
        if twice is not None:  # json.loads keeps the last silently: which 'owner' is the creator to credit?
            yield rejection(ref, "malformed_row", f"key {shown(twice)} appears more than once in the object")
            continue
        yield parsed(value, ref, layout)


class _Object(dict):
    """A JSON object, with the keys it gave more than once (`repeated`)."""

    repeated: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    value = _Object(pairs)
    if len(value) != len(pairs):  # counted only then; a Counter, as a hostile line may repeat a key 10,000 times
        value.repeated = tuple(sorted(key for key, n in Counter(key for key, _ in pairs).items() if n > 1))
    return value


_READERS = {"csv": delimited_rows, "tsv": delimited_rows, "tsv_plain": delimited_rows, "jsonl": _json_rows,
            "parquet": parquet_rows}


def read_rows(path: str, layout: TableLayout, checked: bool = True, name: str | None = None,
              ) -> Iterator[Photo | Rejection]:
    """Every row of one file as a `Photo` or a `Rejection`. A file that cannot be read ends with one rejection
    naming the first line that could not be read; a compressed text file is checked whole first
    (`input_files.check_compressed`), so a damaged one (corrupt gzip, truncated bzip2) is that rejection for line 1 and
    gives no row, and then read as checked (one changed since is refused where it differs). `checked=False` skips
    both, for a launch check reading a few rows (which follows a quoted value for `delimited.LAUNCH_CHECK_BYTES` at
    most, then ends there); Parquet is never read through gzip or bzip2. `name`: the file as its refs name it
    (`input_files.file_label`; its base name where not given)."""
    name = name or posixpath.basename(path.rstrip("/"))
    last = 0
    try:
        for item in _READERS[layout.format](path, layout, checked, name):
            last = int(item.source_ref.rpartition(":")[2])
            yield item
    except FILE_ERRORS as err:
        ref = f"{name}:{last + 1}"
        yield rejection(ref, "unreadable_file", f"{type(err).__name__}: {err}"[:500])


def _columns_of(path: str, layout: TableLayout) -> list[str] | None:
    """The file's column names (None for JSON lines, which have none); ValueError when unreadable."""
    if layout.format == "parquet":
        return parquet_columns(path)
    if layout.format == "jsonl":
        return None
    return header_of(path, layout)


def sniff(path: str, layout: TableLayout, rows: int = 5) -> str | None:
    """Why `path` cannot be read as `layout` says, judged on its header and first rows (None when
    at least one row parses, or it has a header and no rows): a file in another format (`rows` rows refused for their
    form), or without a column --columns names, or whose first SNIFFED_ROWS rows give no photo, fails at launch
    instead of becoming a run that rejects every row."""
    described = DESCRIBED[layout.format]
    try:
        names = _columns_of(path, layout)
        if names == []:
            return "is empty"
        if names is not None:
            missing = header_problem(names, layout)
            if missing:
                columns = ", ".join(shown(name) for name in names[:8]) + (", …" if len(names) > 8 else "")
                return f"has {missing[1]}; its columns: {columns} (is it {described}?)"
            typo = named_missing(names, layout)
            if typo:
                return f"has {typo}"
        first, refused, unusable = "", 0, 0
        for item in read_rows(path, layout, checked=False):  # a few rows: cheap, even of a large file
            if isinstance(item, Photo):
                return None
            first = first or f"{item.source_ref}: {item.reason} ({item.detail})"
            if item.reason in VALUE_REASONS:  # a row read in the right format: reading on costs little
                unusable += 1
                if unusable >= SNIFFED_ROWS:
                    break
            else:
                refused += 1
                if refused >= rows:
                    break
    except FILE_ERRORS as err:
        if layout.format == "parquet":
            return f"cannot be read as Parquet: {type(err).__name__}: {err}"[:300]
        return f"does not look like {described}: {err}"[:300]
    if not first:
        return None if names is not None else "is empty"
    if not refused:
        return f"gives no photo in its first {unusable:,} rows: {first}"[:500]
    return f"does not look like {described}: {first}"[:500]


class _ReadRows(beam.DoFn):
    """A file's rows: photos on the main output, rejections on `rejected`."""

    def __init__(self, layout: TableLayout, pattern: str) -> None:
        self._layout = layout
        self._pattern = pattern

    def process(self, path: str) -> Iterator:
        name = file_label(path, self._pattern)
        for item in bounded_rows(path, read_rows(path, self._layout, name=name), STAGE, name=name):
            yield reject(item) if isinstance(item, Rejection) else item


class ReadTable(beam.PTransform):
    """PBegin -> (PCollection[Photo], PCollection[Rejection]).

    Reads every file matching `pattern` (local path, glob, or any Beam filesystem) in the format
    and with the column mapping of `layout`; rows are reshuffled so that one big file still fans
    out to every worker.
    """

    def __init__(self, pattern: str, layout: TableLayout) -> None:
        super().__init__()
        self._pattern = pattern
        self._layout = layout

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        read = _ReadRows(self._layout, self._pattern)
        rows = spread_files(pbegin, self._pattern) | "Rows" >> beam.ParDo(read).with_outputs(REJECTED, main=KEPT)
        return StageOutput(rows[KEPT] | "SpreadRows" >> beam.Reshuffle(), rows[REJECTED])
