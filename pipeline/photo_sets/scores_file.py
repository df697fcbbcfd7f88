"""A scores file (`pass-pipeline evaluate --json`) as the fit scripts read it: `fit_fusion`, `cross_validate`, and
`fit_probe`'s --scores folder. A missing, unreadable or malformed file ended them with a traceback (FileNotFoundError,
JSONDecodeError, an AttributeError deep in the fit); a named pipe under the name was waited on for good. Each is one
line naming the file (the scripts' usage error, exit 2)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

# `evaluate --json` of a split of a few thousand photographs is a few MB; far over it is no scores file.
MAX_SCORES_BYTES = 512 * 1024 * 1024


class ScoresFileError(ValueError):
    """A scores file that cannot be read as one: the message names it and says why, in one line."""


def read_scores(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes (its sha256 is recorded) and its JSON object, which holds a "split" name and "scores"."""
    name = os.fspath(path)
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NONBLOCK)  # never a wait for a named pipe's writer
    except OSError as err:
        reason = "no regular file" if err.errno == errno.ENXIO else (err.strerror or str(err))
        raise ScoresFileError(f"scores file {name}: {reason}") from None
    if not stat.S_ISREG(os.fstat(handle).st_mode):  # judged by what was opened (a folder, a pipe, a device)
        os.close(handle)
        raise ScoresFileError(f"scores file {name}: no regular file")
    with open(handle, "rb") as file:
        data = file.read(MAX_SCORES_BYTES + 1)
    if len(data) > MAX_SCORES_BYTES:
        raise ScoresFileError(f"scores file {name}: over {MAX_SCORES_BYTES:,} bytes, more than evaluate writes")
    try:
        result = json.loads(data)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ScoresFileError(f"scores file {name}: not JSON ({' '.join(str(err).split())[:120]})") from None
    if not (isinstance(result, dict) and isinstance(result.get("split"), str)
            and isinstance(result.get("scores"), dict)):
        raise ScoresFileError(f"scores file {name}: not what `pass-pipeline evaluate --json` writes (an object with "
                              "a split and its scores)")
    return data, result


def read_scores_folder(folder: Path, split: str) -> dict[str, Any]:
    """`fit_probe --scores FOLDER`: FOLDER/SPLIT.json."""
    return read_scores(folder / f"{split}.json")[1]
