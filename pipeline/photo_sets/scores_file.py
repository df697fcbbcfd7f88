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
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SCORES_BYTES:  # judged by what was opened
        os.close(handle)
        raise ScoresFileError(f"scores file {name}: " + (f"over {MAX_SCORES_BYTES:,} bytes, more than evaluate writes"
                                                          if stat.S_ISREG(info.st_mode) else "no regular file"))
    parts, total = [], 0
    with open(handle, "rb") as file:  # a MiB at a time: read(bound) asks for a buffer of the whole bound up front
        while total <= MAX_SCORES_BYTES and (chunk := file.read(min(1 << 20, MAX_SCORES_BYTES + 1 - total))):
            parts.append(chunk)
            total += len(chunk)
    data = b"".join(parts)
    if len(data) > MAX_SCORES_BYTES:  # grown since its size was taken
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


def read_scores_folder(folder: Path, split: str, keys: list[str]) -> dict[str, Any]:
    """`fit_probe --scores FOLDER`: FOLDER/SPLIT.json, which must be the split's and score each photograph of `keys`
    (`package:member`) as an object: the probe's score is written into each (a missing one ended fit_probe with a
    traceback after the fit, its probe file already written)."""
    path = folder / f"{split}.json"
    result = read_scores(path)[1]
    if result["split"] != split:
        raise ScoresFileError(f"scores file {path}: scores split {str(result['split'])[:40]!r}, not {split}")
    missing = [key for key in keys if not isinstance(result["scores"].get(key), dict)]
    if missing:
        raise ScoresFileError(f"scores file {path}: no scores for {len(missing)} of the split's photographs, e.g. "
                              f"{missing[0][:100]!r}")
    return result
