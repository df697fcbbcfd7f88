"""One line of verify's report (pipeline/release/problem.py): whatever bytes of the release it quotes, printable and
bounded."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.release.problem import MAX_SHOWN, Problem


@pytest.mark.parametrize("hostile", ["9\nrelease: OK", "\x1b[8mhidden", "\r", "a\u2028b", "\u202eevil", "\x00",
                                     "\x9b2J"])
def test_a_part_quoting_the_release_cannot_forge_a_line_or_drive_the_terminal(hostile):
    """A newline and "RELEASE: OK", a terminal escape hiding the rest, a carriage return, a line separator, a bidi
    override: each is quoted, in the path and the message alike, and the text around it kept."""
    problem = Problem(f"parquet/{hostile}.parquet", f"photo {hostile} is not in the index")
    for part in (problem.path, problem.message):
        assert part.isprintable() and "\n" not in part and "\x1b" not in part, part
    assert problem.path.startswith("parquet/") and problem.message.startswith("photo ")
    assert problem.message.endswith(" is not in the index")


def test_printable_text_is_kept_as_it_is():
    problem = Problem("ATTRIBUTION.csv", "photo 7 credits “Zoë Ünal” (CC BY 2.0)")
    assert (problem.path, problem.message) == ("ATTRIBUTION.csv", "photo 7 credits “Zoë Ünal” (CC BY 2.0)")


def test_a_part_longer_than_its_bound_is_cut_saying_how_long_it_was():
    exactly = "7" * MAX_SHOWN
    assert Problem(exactly, exactly) == Problem(exactly, exactly) and Problem(exactly, "").path == exactly
    longer = Problem("x" * 100_000, "7" * (MAX_SHOWN + 1))
    assert longer.path == f"{'x' * MAX_SHOWN}… (cut: 100,000 characters)"
    assert longer.message == f"{'7' * MAX_SHOWN}… (cut: {MAX_SHOWN + 1:,} characters)"


def test_the_bound_holds_for_the_quoted_text_not_the_raw():
    """An unprintable character is quoted in several characters (\\x1b: four): the bound is on what is shown."""
    problem = Problem("", "\x1b" * MAX_SHOWN)
    assert problem.message.startswith("\\x1b") and len(problem.message) < MAX_SHOWN + 40
    assert problem.message.endswith(f"(cut: {4 * MAX_SHOWN:,} characters)"), problem.message[-60:]


def test_a_problem_is_frozen():
    problem = Problem("a", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.message = "RELEASE: OK"  # type: ignore[misc]


def test_a_part_cut_at_its_bound_never_ends_in_half_an_escape():
    """Escaped, then cut at the bound: an unprintable character across the cut was shown as half of its escape
    (`\\x1` of ESC's `\\x1b`, read as other text, the cut's mark after it). The cut now falls where no escape is split,
    the length said still the whole escaped part's."""
    for before in range(MAX_SHOWN - 4, MAX_SHOWN + 1):
        problem = Problem("", "7" * before + "\x1b" * 400)
        shown = problem.message.split("…")[0]
        assert shown.rstrip("\\x1b").rstrip("7") == "" and shown.endswith(("7", "\\x1b")), shown[-8:]
        assert (len(shown) - before) % 4 == 0 and MAX_SHOWN - 3 <= len(shown) <= MAX_SHOWN, shown[-8:]
        assert problem.message.endswith(f"(cut: {before + 1600:,} characters)")
