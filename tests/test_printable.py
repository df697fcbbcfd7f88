"""Text from outside made safe to show (pipeline/printable.py)."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.printable import log_printably, printable


def test_what_a_terminal_would_act_on_is_written_out_and_the_rest_left_as_it_is():
    assert printable("photo 42 — café") == "photo 42 — café"
    assert printable("a\nRELEASE: OK\x1b[8m") == "a\\nRELEASE: OK\\x1b[8m"
    assert printable("right\u202eto left\u2028") == "right\\u202eto left\\u2028"


@given(st.text())
def test_the_shown_text_is_one_printable_line_from_which_the_text_can_be_read_back(text):
    shown = printable(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text
    assert len(shown) >= len(text)


@given(st.text(), st.integers(min_value=0, max_value=40))
def test_the_shown_text_cut_to_a_length_is_the_longest_whole_escaping_of_a_start_of_the_text(text, limit):
    """Cut after escaping, `printable(text)[:limit]` could end in half an escape (`\\x1` of ESC's `\\x1b`), which
    reads as other text; with `limit` it ends where the escaping of a start of the text ends, as long as fits."""
    shown = printable(text, limit=limit)
    starts = [printable(text[:end]) for end in range(len(text) + 1)]
    assert shown == max((start for start in starts if len(start) <= limit), key=len)
    assert printable(text, limit=None) == printable(text)


def test_a_cut_falling_inside_an_escape_leaves_the_whole_escape_out():
    assert printable("ab\x1bcd", limit=4) == "ab"
    assert printable("ab\x1bcd", limit=6) == "ab\\x1b"
    assert printable("ab\u202e", limit=7) == "ab"
    assert printable("abcdef", limit=4) == "abcd"


def test_a_negative_limit_is_refused_where_it_cut_a_printable_texts_end_and_showed_nothing_of_another():
    """A negative `limit` was no count of characters: a printable text was sliced (`text[:-1]`, its last character
    dropped) and any other shown as nothing at all (its first piece already past the limit). No caller passes one;
    one that did is refused, whatever the text."""
    for text in ("abc", "a\x1bb", ""):
        with pytest.raises(ValueError, match="limit -1 is negative"):
            printable(text, limit=-1)


def test_a_log_records_message_is_one_printable_line_and_its_traceback_the_lines_it_is():
    """A library's record quoting outside text (urllib3's "Failed to parse headers (url=%s)") came out as it was: its
    escapes sent to the terminal, its line break a forged line. The message is one printable line; a traceback keeps
    its lines, each escaped, even when another handler formatted it first (its text cached on the record, unescaped)."""
    import logging

    from pipeline.printable import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("x\x1b[2J\u202e")
    except ValueError:
        record = logging.LogRecord("urllib3.connectionpool", logging.WARNING, __file__, 1, "url=%s", ("a\x1b]52;c;x\x07"
                                   "\nINFO pipeline: OK\u202e",), sys.exc_info())
    logging.Formatter().format(record)  # another handler's, first: the traceback's text cached on the record
    assert record.exc_text and "\x1b" in record.exc_text
    lines = formatter.format(record).split("\n")
    assert lines[0] == "WARNING urllib3.connectionpool: url=a\\x1b]52;c;x\\x07\\nINFO pipeline: OK\\u202e"
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == "ValueError: x\\x1b[2J\\u202e", lines
    assert all(line.isprintable() for line in lines)
    plain = logging.LogRecord("pipeline.progress", logging.INFO, __file__, 1, "12 read — café %d", (3,), None)
    assert formatter.format(plain) == logging.Formatter("%(levelname)s %(name)s: %(message)s").format(plain)


def test_an_errors_message_in_a_logged_traceback_is_one_line_whose_line_break_forges_no_log_line():
    """A record logged with its traceback (`exc_info`) ends with the error's line, which quotes the error's message:
    outside text as a record's message is (a URL, what an endpoint answered). Each line of the traceback was escaped
    alone, so a line break in the message still wrote a forged log line of its own (`WARNING pipeline: verify: OK`),
    even when another handler had formatted the record first. The message is one line of the traceback, escaped; the
    traceback's own lines (its frames, the line joining a chained error) are the lines they were."""
    import logging

    from pipeline.printable import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    forged = "x\x1b[2J\nWARNING pipeline: verify: OK"
    for other_handler_first in (False, True):
        try:
            try:
                raise KeyError("cause")
            except KeyError as cause:
                raise ValueError(forged) from cause
        except ValueError:
            record = logging.LogRecord("pipeline", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        if other_handler_first:
            logging.Formatter().format(record)
        lines = formatter.format(record).split("\n")
        assert "WARNING pipeline: verify: OK" not in lines, lines
        assert lines[-1] == "ValueError: x\\x1b[2J\\nWARNING pipeline: verify: OK", lines
        assert lines[0] == "ERROR pipeline: failed" and lines[1] == "Traceback (most recent call last):", lines
        assert "The above exception was the direct cause of the following exception:" in lines, lines
        assert any(line.startswith('  File "') for line in lines), lines
        assert all(line.isprintable() for line in lines), lines


# A library's warning quoting outside text (Beam's, quoting what an object store answered).
FORGED = "a\x1b]52;c;cHduZWQ=\x07\nWARNING pipeline: OK\u202e"
ESCAPED = "a\\x1b]52;c;cHduZWQ=\\x07\\nWARNING pipeline: OK\\u202e"


@pytest.fixture
def root_level_kept() -> Iterator[None]:
    """The root logger's level as it was before the test set up logging."""
    level = logging.root.level
    yield
    logging.root.setLevel(level)


def as_a_process_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root logger with no handler, as a process starts: in a test's body, pytest's own are on it."""
    monkeypatch.setattr(logging.root, "handlers", [])


@pytest.mark.parametrize("script", ["fetch", "fit_fusion", "fit_probe", "cross_validate", "pooled"])
def test_a_librarys_warning_in_a_script_is_one_escaped_log_line(script, root_level_kept, monkeypatch, capsys):
    """pass-pipeline's log handler escapes every record (`PrintableFormatter`), but the `python -m` scripts set up no
    logging: a library's warning quoting outside text (Beam's, reading a model or a scores file on an object store)
    went to logging's last resort as it came, its escapes sent to the terminal and its line break printing a forged
    line. Each script's main sets up pass-pipeline's handler first: the record is one escaped line."""
    module = importlib.import_module(f"pipeline.photo_sets.{script}")

    class Warned(module.OneLineParser):  # a library warns as the script runs
        def parse_args(self, *args, **kwargs):
            logging.getLogger("apache_beam.io.gcp.gcsio").warning("Retrying: %s", FORGED)
            self.error("stopped here")

    monkeypatch.setattr(module, "OneLineParser", Warned)
    as_a_process_starts(monkeypatch)
    with pytest.raises(SystemExit):
        module.main([])
    assert capsys.readouterr().err.splitlines()[0] == f"WARNING apache_beam.io.gcp.gcsio: Retrying: {ESCAPED}"


def test_logging_set_up_printably_twice_writes_each_record_once_and_below_a_warning_nothing(root_level_kept,
                                                                                             monkeypatch, capsys):
    """A script's main run twice in one process (a test's, a notebook's) would otherwise write each record twice."""
    as_a_process_starts(monkeypatch)
    log_printably()
    log_printably()
    logging.getLogger("PIL.Image").info("not shown")
    logging.getLogger("PIL.Image").warning("x%s", "\x1b[2J")
    assert capsys.readouterr().err == "WARNING PIL.Image: x\\x1b[2J\n"
