"""`evaluate --photos --split=SPLIT --record=FILE`: one held-out measurement of a fusion model, appended
to the model's record file (models/fusion*_heldout.json for the shipped ones), the file that manifests
and datasheets quote.

The record is a claim that can fail only if it is honest about what the model saw, so an entry is
refused when:
- the split is one the model was fitted on (its `fitted_on` names them): that is a training figure;
- the file records another model (`fusion_sha256`): figures of two models would mix;
- the split is already recorded with images stored the same way (`storage`): a held-out split is
  scored once per model and storage rule (a later storage rule may add a second entry, as heldout4's did).

The file is replaced atomically (written beside it, then renamed), so a killed run leaves the old one.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pipeline.detectors.fusion import Fusion
from pipeline.photo_sets.score import DECODED_FIRST

# fit_fusion writes "tuning + heldout + heldout2 splits of pipeline/photo_sets/labels.csv: ..."
# how the scored images were stored, as `evaluate` records it (score.Storage)
STORAGE_KEYS = ("resize_reducing_gap", "stored_from", "storage_rule_version")
_FITTED = re.compile(r"^(?P<splits>[\w-]+(?: \+ [\w-]+)*) splits? of ")


class RecordError(RuntimeError):
    """The measurement cannot be recorded in that file (the message says why)."""


def fitted_splits(fusion: Fusion) -> frozenset[str]:
    """The labelled splits the model was fitted on, read from its `fitted_on`; empty when it names none
    in fit_fusion's words (a hand-written model: then every split counts as unseen, and the caller's
    split names are the only guard)."""
    match = _FITTED.match(fusion.fitted_on)
    return frozenset(match["splits"].split(" + ")) if match else frozenset()


def stored_by(result: dict) -> str:
    """How the scored images were stored, in words, from what `evaluate` recorded about them."""
    gap, source, version = (result["resize_reducing_gap"], result["stored_from"], result["storage_rule_version"])
    resize = "a Lanczos resize only" if gap == 0 else f"--resize_reducing_gap={gap:g}"
    if source == DECODED_FIRST:
        return f"{resize} from pixels decoded first (storage rule {version})"
    return f"{resize}, storage rule {version}, from {source}"


def entry(result: dict, today: datetime.date) -> dict[str, Any]:
    """The record's entry for one `evaluate --photos` result: the fields every earlier entry has, in
    the same order, plus the detectors that were scored."""
    combined = result["combined"]
    return {
        "split": result["split"],
        "date": today.isoformat(),
        "images": result["images"],
        "labels": dict(sorted(result["labels"].items())),
        "recall": dict(sorted(combined["recall"].items())),
        "keep_rate": dict(sorted(combined["keep_rate"].items())),
        "missed": sorted(result["missed"]),
        "stored_by": stored_by(result),
        "storage": {key: result[key] for key in STORAGE_KEYS},
        "detectors": list(result["detectors"]),
    }


def _new_record(fusion: Fusion) -> dict[str, Any]:
    fitted = fusion.fitted_on or "splits it does not name"
    return {"_comment": "pass-pipeline evaluate --photos=DIR --split=SPLIT --record=FILE with the fusion model of "
                        f"this sha256 ({fusion.file or 'a model file'}, fitted on {fitted}); "
                        "one entry per held-out split it was measured on",
            "fusion_sha256": fusion.sha256,
            "evaluations": []}


def _read(path: Path, fusion: Fusion) -> dict[str, Any]:
    if not path.exists():
        return _new_record(fusion)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path} is not a held-out record: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("evaluations"), list):
        raise RecordError(f"{path} is not a held-out record: no list of evaluations")
    if record.get("fusion_sha256") != fusion.sha256:
        raise RecordError(f"{path} records the fusion model {record.get('fusion_sha256')!r}, "
                          f"not this one ({fusion.sha256})")
    return record


def check(path: Path, split: str, fusion: Fusion | None) -> dict[str, Any]:
    """The record at `path` (a new one when missing), if this model's figure on `split` may go into it;
    RecordError otherwise. Run before scoring too, so a refusal does not come after an hour of detectors."""
    if fusion is None:
        raise RecordError("--record needs a fusion model: a record holds the figures of one model")
    if split in ("", "all", "tuning"):
        raise RecordError(f"--record needs one held-out split, not {split or 'none'!r}")
    if split in fitted_splits(fusion):
        raise RecordError(f"the fusion model was fitted on {split}: a figure there is a training score, not a "
                          "held-out one")
    return _read(path, fusion)


def append(path: Path, result: dict, fusion: Fusion | None, today: datetime.date | None = None) -> dict[str, Any]:
    """Adds this result to the record at `path` (created when missing) and returns the new entry;
    RecordError when it must not be recorded there."""
    split = result.get("split", "")
    record = check(path, split, fusion)
    assert fusion is not None  # check() refuses a missing model
    new = entry(result, today or datetime.datetime.now(datetime.UTC).date())
    for earlier in record["evaluations"]:
        if not isinstance(earlier, dict) or earlier.get("split") != split:
            continue
        # An entry written by hand before `storage` was recorded cannot say how its images were stored:
        # it blocks the split as if stored the same way (edit the file to add a deliberate second entry).
        if earlier.get("storage", new["storage"]) == new["storage"]:
            raise RecordError(f"{path} already records {split} with images stored the same way "
                              f"({earlier.get('date')}): a held-out split is scored once")
    record["evaluations"].append(new)
    _write_atomically(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return new


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
