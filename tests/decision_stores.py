"""Decisions stores as hands, spreadsheets and cut copies leave them, and the store as it was read whole: the oracle
the stores read a chunk at a time are compared against."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from hypothesis import strategies as st

from pipeline import decisions_file
from pipeline.decision_table import DECISIONS, Decision
from pipeline.decisions_file import decisions_bytes, parse_decisions, text_of_decisions
from pipeline.io.sinks import csv_cell

_HOSTILE_IDS = st.one_of(st.integers(1, 5).map(str), st.integers(1, 5).map(str), st.integers(1, 5).map(str),
                         st.integers(10**19 - 1, 10**19 + 1).map(str),
                         st.sampled_from(["07", "7.0", "\u0667", "", " 5 ", "x", "0", "-3", "1e3", "=5"]))
_HOSTILE_VERDICTS = st.sampled_from([*DECISIONS * 4, "", "maybe", " accept ", "ACCEPT"])
_HOSTILE_SHA256 = st.sampled_from(["", "", "a" * 64, "A" * 64, "b" * 64, "", "a" * 64, "abc"])
_HOSTILE_NOTES = st.text(st.sampled_from("ab ,\"'=\r\n\u2028\u00e9"), max_size=8)


@st.composite
def hostile_stores(draw: st.DrawFn) -> bytes:
    """A decisions store's bytes as a hand, a spreadsheet or a cut copy leaves it: a photo decided twice (otherwise,
    or the same way), a verdict or an id that is none, a sha256 that is no image's, cells past the header's, a header
    lacking a column or naming one twice, a byte order mark, CRLF or CR line ends, blank lines, a quote opened and
    never closed, long lines, bytes that are no UTF-8, a file cut anywhere (its last line truncated), an empty file."""
    header = draw(st.sampled_from(["photo_id,decision,note,sha256"] * 6 + [
        "decision,photo_id,sha256", "photo_id,decision", "photo_id,note", "photo_id,decision,decision", ""]))
    lines = [header]
    for _ in range(draw(st.integers(0, 10))):
        note = "y" * 150 if draw(st.integers(0, 15)) == 0 else draw(_HOSTILE_NOTES)  # a line over the bound
        cells = [draw(_HOSTILE_IDS), draw(_HOSTILE_VERDICTS), note, draw(_HOSTILE_SHA256)]
        quoted = cells if draw(st.integers(0, 3)) == 0 else [csv_cell(cell) for cell in cells]
        lines.append(",".join(quoted + (["x"] if draw(st.integers(0, 9)) == 0 else [])))
        lines.extend([""] * draw(st.integers(0, 1)))
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    raw = (draw(st.sampled_from(["", "\ufeff"])) + end.join(lines) + end).encode()
    if draw(st.integers(0, 7)) == 0:  # bytes that are no UTF-8: a stray byte, a character cut short
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x80", b"\xef\xbb"])) + raw[at:]
    if draw(st.integers(0, 5)) == 0:  # cut anywhere, in a character too
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw


@contextlib.contextmanager
def small_bounds() -> Iterator[None]:
    """The bounds on a decisions file made small enough for `hostile_stores` to pass each: its bytes, its rows, the
    characters of a row."""
    with mock.patch.multiple(decisions_file, MAX_DECISIONS_BYTES=900, DECISION_ROW_FLOOR=6, MAX_DECISION_LINE=200):
        yield


def read_whole(path: str) -> tuple[dict[str, Decision] | None, str | None]:
    """(its decisions, None) or (None, the refusal) of a store read as it was whole: its bytes, then its text, then a
    dict of it (`parse_decisions`)."""
    try:
        return parse_decisions(text_of_decisions(decisions_bytes(path), path), lambda line: f"{path}:{line}"), None
    except ValueError as err:
        return None, str(err)
