"""A scores file (`pass-pipeline evaluate --json`) as the fit scripts read it: `fit_fusion`, `cross_validate`, and
`fit_probe`'s --scores folder. A missing, unreadable or malformed file ended them with a traceback (FileNotFoundError,
JSONDecodeError, an AttributeError deep in the fit); a named pipe under the name was waited on for good. Each is one
line naming the file (the scripts' usage error, exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.io.regular_files import open_local_regular, read_at_most

# `evaluate --json` of a split of a few thousand photographs is a few MB; far over it is no scores file.
MAX_SCORES_BYTES = 512 * 1024 * 1024


class ScoresFileError(ValueError):
    """A scores file that cannot be read as one: the message names it and says why, in one line."""


def read_scores(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes (its sha256 is recorded) and its JSON object, which holds a "split" name and "scores"."""
    name = os.fspath(path)
    try:
        with open_local_regular(name) as file:  # never a wait for a named pipe's writer
            data = read_at_most(file, MAX_SCORES_BYTES + 1)
    except ValueError:
        raise ScoresFileError(f"scores file {name}: no regular file") from None
    except OSError as err:
        raise ScoresFileError(f"scores file {name}: {err.strerror or err}") from None
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
