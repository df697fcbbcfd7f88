"""One line of `verify`'s report, made safe to print whatever bytes of the release it quotes."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.printable import printable


@dataclass(frozen=True)
class Problem:
    """One line of the report. Both parts can quote the release's own bytes (file names, photo ids from its
    shards, parse errors): any unprintable character is quoted, so a resealed release cannot forge or hide
    lines of the report (a newline and "RELEASE: OK", or a terminal escape hiding the rest), and a part longer than
    `MAX_SHOWN` characters is cut there (a resealed index's photo id of megabytes was quoted whole)."""

    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _bounded(self.path))
        object.__setattr__(self, "message", _bounded(self.message))


# What a part of a report line shows: a line is for a person to read, and a run's own ids and paths are short.
MAX_SHOWN = 1000


def _bounded(text: str) -> str:
    """`text` escaped, cut at MAX_SHOWN where no escape is split (cut after escaping, `\\x1b` could end as `\\x1`)."""
    shown = printable(text)
    if len(shown) <= MAX_SHOWN:
        return shown
    return f"{printable(text, limit=MAX_SHOWN)}… (cut: {len(shown):,} characters)"
