"""One row of a generic metadata table -> a `Photo` or a `Rejection`, and the layout that says how to read a table:
its format and the user's column for each of our fields.

Our fields are `id` and `url` (required), `owner`, `title`, `page_url` and `license` (a license URL or name; a value
with a '/' in it is read as a URL). `--columns=url=photo_url,id=photo_id,…` names the user's column for each field; a
field not named is read from the column of its own name. Rows come out as the same `Photo` the YFCC source emits, so
every later stage — the license filter first, which keeps CC BY 2.0 and 4.0 only — treats them alike. The readers of
each format (`delimited`, `parquet_rows`, JSON lines in `table`) give this module their rows as {column: value}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.flickr.licenses import canonical_license
from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id, is_utf8_text, value_kind
from pipeline.sources import STAGE, fields
from pipeline.sources.input_files import BROKEN_FILE_ERRORS, MAX_LINE_BYTES

FORMATS = ("csv", "tsv", "tsv_plain", "parquet", "jsonl")
# Our fields, in the order a row is checked: the id first, so that later problems name the photo.
FIELDS = ("id", "url", "owner", "title", "page_url", "license")
# Without an id or a URL there is no photo; without a license no row could pass the license stage.
REQUIRED = ("id", "url", "license")
DESCRIBED = {"csv": "CSV with a header row", "tsv": "tab-separated values with a header row",
             "tsv_plain": "tab-separated values with a header row, no quoting",
             "parquet": "Parquet", "jsonl": "JSON lines (one object per line)"}
# URLs are bounded as every source bounds them (`fields.MAX_URL_CHARS`); other values by the line limit in text
# tables and by this in Parquet, whose cells have no such bound.
MAX_URL_CHARS = fields.MAX_URL_CHARS
MAX_VALUE_CHARS = MAX_LINE_BYTES
FILE_ERRORS = (*BROKEN_FILE_ERRORS, pa.ArrowException)  # gzip, bz2, pyarrow: all of a broken file


@dataclass(frozen=True)
class TableLayout:
    """How to read a table: its format, the user's column for each of our fields, and which of
    those the user named (a named column that is missing is a mistake worth refusing at launch)."""

    format: str
    columns: tuple[tuple[str, str], ...]  # (our field, their column) for every field
    named: tuple[str, ...] = ()

    def column(self, name: str) -> str:
        return dict(self.columns)[name]


def table_layout(input_format: str, columns: str = "") -> TableLayout:
    """--input_format and --columns -> a `TableLayout`, else ValueError saying what is wrong."""
    if input_format not in FORMATS:
        raise ValueError(f"--input_format {input_format!r} is not one of {', '.join(FORMATS)}")
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in columns.split(",")):
        if not item:
            continue
        ours, equals, theirs = (part.strip() for part in item.partition("="))
        if not equals or not ours or not theirs:
            raise ValueError(f"--columns: {item!r}: expected FIELD=COLUMN")
        if ours not in FIELDS:
            raise ValueError(f"--columns: unknown field {ours!r} (fields: {', '.join(FIELDS)})")
        if ours in mapping:
            raise ValueError(f"--columns: {ours!r} is mapped twice")
        mapping[ours] = theirs
    return TableLayout(input_format, tuple((name, mapping.get(name, name)) for name in FIELDS), tuple(mapping))


def rejection(ref: str, reason: str, detail: str, photo_id: str = "") -> Rejection:
    return Rejection(photo_id or ref, STAGE, reason, detail, "", ref)


def shown(name: str) -> str:
    return repr(name[:40])


def _text(value: object, column: str, limit: int = MAX_VALUE_CHARS) -> str:
    """A cell that must hold text: '' when absent; ValueError with the detail otherwise."""
    if value is None:
        return ""
    if isinstance(value, bytes):  # Parquet writers may store text as plain binary
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"column {shown(column)} holds bytes that are not UTF-8") from None
    if not isinstance(value, str):
        raise ValueError(f"column {shown(column)} holds a {value_kind(value)}, not text")
    if len(value) > limit:
        raise ValueError(f"column {shown(column)} holds {len(value):,} characters, over the limit of {limit:,}")
    if "\x00" in value:  # never text; C libraries downstream would cut the value short at it
        raise ValueError(f"column {shown(column)} holds a NUL character")
    if not is_utf8_text(value):  # a JSON "\ud800": no writer (nor the shuffle) can encode it
        raise ValueError(f"column {shown(column)} holds a lone surrogate, which is no UTF-8 text")
    return value.strip()


def parse_row(values: Mapping[str, Any], ref: str, layout: TableLayout) -> Photo | Rejection:
    """One row, as {their column: value}, -> a `Photo`, or a `Rejection` saying what is wrong.
    Absent columns are absent values here: a missing header column is the caller's to report."""
    column = layout.column
    raw_id = values.get(column("id"))
    try:
        photo_id = canonical_photo_id("" if raw_id is None else raw_id.strip() if isinstance(raw_id, str) else raw_id)
    except BadPhotoId as err:
        return rejection(ref, err.reason, f"column {shown(column('id'))}: {err}")
    try:
        url = _text(values.get(column("url")), column("url"), MAX_URL_CHARS)
        text = {name: _text(values.get(column(name)), column(name)) for name in ("owner", "title", "page_url",
                                                                                 "license")}
        fields.page_url(text["page_url"], f"column {shown(column('page_url'))}")
    except ValueError as err:  # BadField is one too
        return rejection(ref, "bad_field", str(err), photo_id)
    if not url:
        return rejection(ref, "missing_url", f"column {shown(column('url'))} is empty", photo_id)
    license_value = text["license"]
    is_url = "/" in license_value
    source_name, source_url = ("", license_value) if is_url else (license_value, "")
    # One canonical name and https URL per license, as every source records it; the table's words kept beside them
    license_name, license_url = canonical_license(source_name, source_url)
    return Photo(
        photo_id=photo_id,
        source=layout.format,
        source_ref=ref,
        owner_name=text["owner"],
        title=text["title"],
        page_url=text["page_url"],
        download_url=url,
        license_name=license_name,
        license_url=license_url,
        license_source_text=source_name,
        license_source_url=source_url,
    )


def parsed(values: Mapping[str, Any], ref: str, layout: TableLayout) -> Photo | Rejection:
    """`parse_row`, with any exception it was not written for as one `internal_error` for this row
    alone (as the stages' wrapper does for a record), so that the rest of the file is still read."""
    try:
        return parse_row(values, ref, layout)
    except Exception as err:  # the safety net: every known problem has its reason in parse_row
        return rejection(ref, "internal_error", f"{type(err).__name__}: {err}"[:500])


def header_problem(names: Sequence[str], layout: TableLayout) -> tuple[str, str] | None:
    """(reason, detail) when a file's columns cannot give our required fields, or give any field twice
    (two 'owner' columns: which one is the creator to credit?), else None."""
    for name in REQUIRED:
        theirs = layout.column(name)
        if theirs not in names and name in layout.named:
            return "missing_column", f"no column {shown(theirs)} (--columns {name}={theirs})"
        if theirs not in names:  # "(--columns license=license)" told a newcomer who gave no --columns nothing to do
            return "missing_column", (f"no column {shown(theirs)}, which the required field {name} is read from "
                                      f"unless --columns names yours ({name}=YOUR_COLUMN)")
    for name in FIELDS:
        theirs = layout.column(name)
        if list(names).count(theirs) > 1:
            return "bad_header", f"column {shown(theirs)} {list(names).count(theirs)} times in its header"
    return None


def named_missing(names: Sequence[str], layout: TableLayout) -> str | None:
    """A column the user named in --columns that the file does not have (a typo, most likely)."""
    for name in layout.named:
        theirs = layout.column(name)
        if theirs not in names:
            return f"no column {shown(theirs)} (--columns {name}={theirs})"
    return None
