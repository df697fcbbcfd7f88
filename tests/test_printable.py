"""Text from outside made safe to show (pipeline/io/printable.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.printable import printable


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
