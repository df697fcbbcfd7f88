"""The files a file source reads (`sources/input_files.py`): where a line ends, lines over the bound, a compressed
file's inflation bound, and which errors are a file's own."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipeline.records import Rejection
from pipeline.sources import input_files


def test_the_inflation_bound_is_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(input_files, "INFLATION_FLOOR", 1000)
    monkeypatch.setattr(input_files, "MAX_INFLATION", 1)
    for size, refused in ((1000, False), (1001, True)):
        path = tmp_path / f"{size}.tsv.gz"
        path.write_bytes(gzip.compress(b"x" * (size - 1) + b"\n", compresslevel=1))
        with pytest.raises(OSError, match="compression bomb") if refused else _Nothing():
            input_files.check_compressed(str(path))


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_only_a_gcs_object_gone_or_refused_is_a_broken_file():
    """An object gone (404) or refused (403) is that file's failure; a 429, 401 or 5xx is the service's or our
    credentials': it fails the bundle (retried by the runner) rather than rejecting every row as unreadable."""
    from google.api_core import exceptions as google

    broken = input_files.BROKEN_FILE_ERRORS
    assert isinstance(google.NotFound("gone"), broken) and isinstance(google.Forbidden("refused"), broken)
    for error in (google.TooManyRequests("slow down"), google.Unauthorized("who"), google.ServiceUnavailable("busy"),
                  google.GatewayTimeout("late")):
        assert not isinstance(error, broken)


_ENDS = ("\n", "\r\n", "\r", "\r\r\n")


@given(lines=st.lists(st.tuples(st.one_of(st.text("ab", max_size=3), st.text("ab", min_size=10, max_size=20)),
                                st.sampled_from(_ENDS)), max_size=12),
       last=st.text("ab", max_size=3), chunk=st.integers(1, 8))
def test_a_line_ends_at_a_newline_a_crlf_or_a_lone_cr(tmp_path_factory, lines, last, chunk):
    """Python's universal newlines (and its csv module) end a line at \\n, \\r\\n or a lone \\r; readline() ends
    one at \\n only, so a file of lone CRs (a classic Mac export) was one line: every row its line 1. The oracle
    tokenises the bytes (the CRs before a \\n are that line's end, as Windows text mode writes "\\r\\r\\n"; a lone CR
    is kept at the end of its line); a line over the bound is line_too_long, wherever its end falls in the pieces
    it is skipped in."""
    import re

    data = "".join(text + end for text, end in lines).encode() + last.encode()
    assume(not re.search(rb"\r{5,}\n", data))  # more CRs than the bound before a \n: lines of their own, bounded
    path = tmp_path_factory.mktemp("ends") / "t.tsv"
    path.write_bytes(data)
    expected = []
    for number, token in enumerate(re.findall(rb"[^\r\n]*(?:\r*\n|\r)|[^\r\n]+\Z", data), 1):
        text = token.rstrip(b"\r\n")
        expected.append((f"t.tsv:{number}", text + (b"\r" if token.endswith(b"\r") else b""))
                        if len(text) <= 5 else ("rejected", f"t.tsv:{number}", "line_too_long"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(input_files, "_SKIP_CHUNK", chunk)
        got = [item if isinstance(item, tuple) else ("rejected", item.source_ref, item.reason)
               for item in input_files.read_numbered_lines(str(path), max_line=5)]
    assert got == expected


def test_a_run_of_lone_crs_is_searched_once_not_again_for_each_of_its_lines(tmp_path, monkeypatch):
    """Each CR of a run is a line; the run was searched to its end for each of them: 200,000 CRs (200 kB) took 56 s.
    Each byte of the run is now looked at a bounded number of times."""
    scanned = []
    real = input_files._NOT_CR

    class Counting:
        def search(self, data: bytes, start: int):
            found = real.search(data, start)
            scanned.append((found.start() if found else len(data)) - start)
            return found

    monkeypatch.setattr(input_files, "_NOT_CR", Counting())
    path = tmp_path / "crs.tsv"
    path.write_bytes(b"a\n" + b"\r" * 20_000 + b"b\n")
    lines = [item[1] for item in input_files.read_numbered_lines(str(path))]
    assert lines == [b"a", *[b"\r"] * 20_000, b"b"]
    assert sum(scanned) < 4 * path.stat().st_size, sum(scanned)


@given(lines=st.lists(st.tuples(st.text(st.sampled_from('ab"'), min_size=1, max_size=40),
                                st.sampled_from(["\n", "\r\n", "\r"])), min_size=1, max_size=8),
       compressed=st.booleans())
def test_a_line_over_the_bound_is_given_to_dropped_whole_in_pieces_before_its_rejection(tmp_path_factory, lines,
                                                                                         compressed):
    """`dropped` is given every byte of each line too long to be read, its end left out, before the line's
    `Rejection` (a table reader follows a quoted value's quotes through it), whatever ends the line, and nothing of a
    line within the bound."""
    path = tmp_path_factory.mktemp("d") / ("t.csv.gz" if compressed else "t.csv")
    data = "".join(text + end for text, end in lines).encode()
    path.write_bytes(gzip.compress(data) if compressed else data)
    pieces: list[bytes] = []
    got = []
    for item in input_files.read_numbered_lines(str(path), max_line=8, dropped=pieces.append):
        got.append(b"".join(pieces) if isinstance(item, Rejection) else None)
        pieces.clear()
    assert got == [text.encode() if len(text) > 8 else None for text, _ in lines]


@pytest.mark.parametrize(("path", "pattern", "label"), [
    ("dumps/part-0.tsv", "dumps/part-0.tsv", "part-0.tsv"),  # a file named without a wildcard: its base name
    ("/data/dumps/2026-10/part-0.tsv", "/data/dumps/**", "./2026-10/part-0.tsv"),
    ("/data/dumps/2026-10/part-0.tsv", "/data/dumps/*/part-0.tsv", "./2026-10/part-0.tsv"),
    ("/data/dumps/part-0.tsv", "/data/dumps/", "part-0.tsv"),  # a folder: its files
    ("part-0.tsv", "*.tsv", "part-0.tsv"),  # in the working folder
    ("/data/d2026/part-0.tsv", "/data/d20[0-9][0-9]/part-0.tsv", "./d2026/part-0.tsv"),  # the glob's folder, not deeper
    ("/data/a[b/x.tsv", "/data/a[b/*.tsv", "x.tsv"),  # an unclosed '[' is a literal, part of the folder
    ("gs://bucket/yfcc/2014/x.bz2", "gs://bucket/yfcc/**.bz2", "./2014/x.bz2"),
    ("/elsewhere/x.tsv", "/data/*.tsv", "x.tsv"),  # a path the glob did not spell: its base name
    ("/backup/2026-10/parquet/p-0.parquet", "/backup/*/parquet/*.parquet", "./2026-10/parquet/p-0.parquet"),
])
def test_a_file_is_named_by_its_path_below_the_glob_s_literal_folder(path, pattern, label):
    assert input_files.file_label(path, pattern) == label


# A folder or file name that is no glob of its own (no wildcard), in any other character a name may hold
_SEGMENT = st.text(st.characters(blacklist_characters="/\x00*?[", codec="utf-8"), min_size=1, max_size=8)


@given(folder=st.lists(_SEGMENT, max_size=3), below=st.lists(_SEGMENT, min_size=1, max_size=4), release=_SEGMENT)
def test_no_file_a_glob_names_is_labelled_as_a_carried_row_is(folder, below, release):
    """A refresh's changelog tells a carried row's rejection by its ref's start, `NAME/parquet/` (release/carry.py):
    an input file must never be labelled so, whatever the folders below the glob are called."""
    root = "/" + "/".join(folder) + ("/" if folder else "")
    label = input_files.file_label(root + "/".join(below), root + "**")
    assert label == "/".join(below) if len(below) == 1 else label == "./" + "/".join(below)
    assert not label.startswith(f"{release}/parquet/")
