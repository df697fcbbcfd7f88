"""`evaluate --photos --split=SPLIT --record=FILE`: one held-out measurement of a fusion model, appended
to the model's record file (models/fusion*_heldout.json for the shipped ones), the file that manifests
and datasheets quote as the model's figures.

The record is a claim that can fail only if it is honest about what the model saw and what was run, so
an entry is refused — before any detector runs — when:
- the model does not say, in fit_fusion's words, which splits it was fitted on, or the split is one of
  them (a training figure), or the split is the tuning split;
- the run is not the model's own decision: other detectors selected than the ones it reads and the
  default detectors without human classes (open_nsfw, which a run selects for its own nsfw threshold), a registry
  of one's own that changes a detector beyond declaring context classes (it may redefine a detector under its
  built-in name; one that only adds `context_columns` or `context_probes` to built-in entries is recorded with its
  name and sha256), a threshold overridden, images
  stored at another size or tiled from another size, a resize rule that is neither the default nor
  Lanczos only (those settings are not in the entry, so they must not vary);
- the file records another model (`fusion_sha256`) or holds something that is not a list of entries;
- the split is already recorded with images stored the same way (`storage`): a held-out split is scored
  once per model and storage rule (a later storage rule may add a second entry, as heldout4's did).

The file is replaced atomically (written beside it, flushed to disk, then renamed, keeping its mode:
io/whole_file.py), so a killed run leaves the old one. Two runs recording into one file at once are not
guarded against: the later rename wins.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import load_registry, read_registry, select
from pipeline.io.files import read_bytes, read_regular_file
from pipeline.io.whole_file import write_whole
from pipeline.photo_sets.score import DECODED_FIRST, Storage
from pipeline.printable import printable
from pipeline.stages.image import ImageConfig

# The settings a recorded figure is measured with (`evaluate`'s defaults, which are a run's).
RECORDED_MAX_SIDE = ImageConfig.max_side
RECORDED_TILE_MIN_SIDE = RuntimeConfig.tile_min_side
RECORDED_GAPS = (ImageConfig.resize_reducing_gap, 0.0)  # today's resize rule, or the one before it

# fit_fusion writes "tuning + heldout + heldout2 splits of pipeline/photo_sets/labels.csv: ..."
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record holds a few hundred evaluations of ~2 kB: far under it
_FITTED = re.compile(r"^(?P<splits>[\w-]+(?: \+ [\w-]+)*) splits? of ")


class RecordError(RuntimeError):
    """The measurement cannot be recorded in that file (the message says why)."""


def fitted_splits(fusion: Fusion) -> frozenset[str] | None:
    """The labelled splits the model was fitted on, read from its `fitted_on`; None when it does not
    name them in fit_fusion's words (a hand-written model: nothing can be said to be held out from it)."""
    match = _FITTED.match(fusion.fitted_on)
    return frozenset(match["splits"].split(" + ")) if match else None


def stored_by(storage: Storage) -> str:
    """How the scored images were stored, in words."""
    gap = storage.resize_reducing_gap
    resize = "a Lanczos resize only" if gap == 0 else f"--resize_reducing_gap={gap}"
    if storage.stored_from == DECODED_FIRST:
        return f"{resize} from pixels decoded first (storage rule {storage.storage_rule_version})"
    return f"{resize}, storage rule {storage.storage_rule_version}, from {storage.stored_from}"


def entry(result: dict, storage: Storage, today: datetime.date) -> dict[str, Any]:
    """The record's entry for one `evaluate --photos` result: the fields every earlier entry has, in
    the same order, plus how the images were stored as data (`storage`) and the detectors scored."""
    combined = result["combined"]
    return {
        "split": result["split"],
        "date": today.isoformat(),
        "images": result["images"],
        "labels": dict(sorted(result["labels"].items())),
        "recall": dict(sorted(combined["recall"].items())),
        "keep_rate": dict(sorted(combined["keep_rate"].items())),
        "missed": sorted(result["missed"]),
        "stored_by": stored_by(storage),
        "storage": asdict(storage),  # the keys `evaluate --json` records them under
        "detectors": list(result["detectors"]),
        # photographs a default run refuses before detection, scored with the pixel cap raised (entries after heldout15;
        # heldout15's one, cropimage's 108-megapixel photograph, is named in docs/held-out-evaluation.md)
        **({"over_pixel_cap": sorted(result["over_pixel_cap"])} if result.get("over_pixel_cap") else {}),
    }


def _new_record(fusion: Fusion) -> dict[str, Any]:
    return {"_comment": "pass-pipeline evaluate --photos=DIR --split=SPLIT --record=FILE with the fusion model of "
                        f"this sha256 ({fusion.file or 'a model file'}, fitted on {fusion.fitted_on}); "
                        "one entry per held-out split it was measured on",
            "fusion_sha256": fusion.sha256,
            "evaluations": []}


def _well_formed(evaluation: Any) -> bool:
    return (isinstance(evaluation, dict) and isinstance(evaluation.get("split"), str)
            and isinstance(evaluation.get("storage", {}), dict))


def _read(path: Path, fusion: Fusion) -> dict[str, Any]:
    # Read through a link, the record was then written whole under the link's own name (io/whole_file.py): the link
    # replaced by a file, the record it led to (kept with the model) left without the measurement said recorded.
    if path.is_symlink():
        raise RecordError(f"{path} is a symbolic link (to {printable(os.readlink(path), limit=200)}): the record is "
                          "written whole under its name, which would replace the link and leave the record it leads "
                          "to without this measurement; give that record's own path as --record")
    if not path.exists():
        return _new_record(fusion)
    try:
        # Never a wait: read as text, a named pipe under the name waited for a writer that does not come, for good.
        data = read_regular_file(str(path), MAX_RECORD_BYTES)
    except (ValueError, OSError) as err:  # ValueError: no regular file, or over the bound
        raise RecordError(f"{path} is not a held-out record: {err}") from None
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path} is not a held-out record: {err}") from None
    if not isinstance(record, dict) or not isinstance(record.get("evaluations"), list):
        raise RecordError(f"{path} is not a held-out record: no list of evaluations")
    if not all(_well_formed(evaluation) for evaluation in record["evaluations"]):
        raise RecordError(f"{path} is not a held-out record: an evaluation without a split, or with a storage "
                          "that is not an object")
    if record.get("fusion_sha256") != fusion.sha256:
        raise RecordError(f"{path} records the fusion model {record.get('fusion_sha256')!r}, "
                          f"not this one ({fusion.sha256})")
    return record


@dataclass(frozen=True)
class Measurement:
    """What `evaluate` is asked to measure, known before any detector runs."""

    split: str
    fusion: Fusion | None
    storage: Storage  # how the scored images are (or were, for --scores) stored
    detectors: tuple[str, ...]
    overrides: str = ""  # --detect_thresholds
    max_side: int = RECORDED_MAX_SIDE
    tile_min_side: int = RECORDED_TILE_MIN_SIDE
    model_registry: str = ""  # --model_registry: may redefine a detector under its built-in name


def _setup_problems(fusion: Fusion, m: Measurement) -> list[str]:
    problems = []
    # A run selects the registry's default detectors without human classes (open_nsfw) for their own thresholds,
    # whether or not the model reads them: a figure without them is of a decision no default run makes.
    nsfw_defaults = {spec.name for spec in select(load_registry(), "default") if not spec.human_classes}
    if set(m.detectors) != fusion.detectors | nsfw_defaults:
        problems.append(f"the detectors selected ({', '.join(sorted(m.detectors)) or 'none'}) are not the ones "
                        f"the model reads ({', '.join(sorted(fusion.detectors))}) with the default detectors "
                        f"without human classes ({', '.join(sorted(nsfw_defaults))}), and nothing else")
    if m.model_registry:
        changed = _changed_beyond_context(m.model_registry)
        if changed:
            problems.append(f"--model_registry changes {', '.join(changed)} beyond declaring context classes: it may "
                            "redefine the detectors the model reads under their names")
    if m.overrides.strip():
        problems.append("--detect_thresholds overrides a threshold")
    if m.max_side != RECORDED_MAX_SIDE:
        problems.append(f"--max_side is {m.max_side}, not {RECORDED_MAX_SIDE}")
    if m.tile_min_side != RECORDED_TILE_MIN_SIDE:
        problems.append(f"--detect_tile_min_side is {m.tile_min_side}, not {RECORDED_TILE_MIN_SIDE}")
    if m.storage.resize_reducing_gap not in RECORDED_GAPS:
        problems.append(f"--resize_reducing_gap is {m.storage.resize_reducing_gap}, neither the default nor 0")
    return problems


def _changed_beyond_context(path: str) -> list[str]:
    """The entries of a --model_registry file that are not a built-in detector with, at most, context classes
    added (`decoder.context_columns`, `decoder.context_probes`): anything else would file another decision under
    the model's figures."""
    builtins = load_registry()
    changed = []
    for name, spec in read_registry(path).items():
        plain = dataclasses.replace(spec, probes=(), decoder={k: v for k, v in spec.decoder.items()
                                                               if k not in ("context_columns", "context_probes")})
        if builtins.get(name) != plain:
            changed.append(name)
    return sorted(changed)


def registry_note(path: str) -> dict[str, str]:
    """How an entry names the --model_registry file it was measured with: its file name and sha256."""
    return {"file": Path(path).name, "sha256": hashlib.sha256(read_bytes(path)).hexdigest()}


def _already_recorded(record: dict[str, Any], split: str, storage: Storage) -> dict[str, Any] | None:
    for earlier in record["evaluations"]:
        # An entry written by hand before `storage` was recorded cannot say how its images were stored:
        # it blocks its split as if stored the same way (edit the file to add a deliberate second entry).
        if earlier["split"] == split and earlier.get("storage", asdict(storage)) == asdict(storage):
            return earlier
    return None


def check(path: Path, m: Measurement) -> tuple[Fusion, dict[str, Any]]:
    """The model and the record at `path` (a new one when missing), if this measurement may go into it;
    RecordError otherwise. Run before scoring, so that a refusal does not come after an hour of
    detectors, and again before writing."""
    fusion = m.fusion
    if fusion is None:
        raise RecordError("--record needs a fusion model: a record holds the figures of one model")
    if m.split in ("", "all", "tuning"):
        raise RecordError(f"--record needs one held-out split, not {m.split or 'none'!r}")
    fitted = fitted_splits(fusion)
    if fitted is None:
        raise RecordError("the fusion model does not name the splits it was fitted on (its fitted_on is not "
                          "fit_fusion's): no split can be said to be held out from it")
    if m.split in fitted or "all" in fitted:
        raise RecordError(f"the fusion model was fitted on {m.split}: a figure there is a training score, not a "
                          "held-out one")
    problems = _setup_problems(fusion, m)
    if problems:
        raise RecordError("a record holds the model's own decision, measured as a run stores images: "
                          + "; ".join(problems))
    record = _read(path, fusion)
    earlier = _already_recorded(record, m.split, m.storage)
    if earlier is not None:
        raise RecordError(f"{path} already records {m.split} with images stored the same way "
                          f"({earlier.get('date')}): a held-out split is scored once")
    return fusion, record


def append(path: Path, m: Measurement, result: dict, today: datetime.date, written: list[str] | None = None,
           name: str | None = None) -> dict[str, Any]:
    """Adds the result of measurement `m` to the record at `path` and returns the new entry; checked
    again first (the file may have changed while the detectors ran). Once the record is renamed into place, `name`
    is in `written` (a stop landing right after the rename said the record was not written)."""
    _, record = check(path, m)
    if result["split"] != m.split or tuple(result["detectors"]) != m.detectors:
        raise RecordError("the result is not the one measured")  # a caller's mistake, not the user's
    combined = result["combined"]
    if not combined["recall"]["n"] or not combined["keep_rate"]["n"]:
        raise RecordError(f"{m.split} has no photographs with a human or no clean ones: nothing to record")
    new = entry(result, m.storage, today)
    if m.model_registry:
        new["model_registry"] = registry_note(m.model_registry)
    record["evaluations"].append(new)
    _write_atomically(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n", written, name)
    return new


def _write_atomically(path: Path, text: str, written: list[str] | None = None, name: str | None = None) -> None:
    # Not io.files.write_atomically (Beam's local filesystem): a record is a file in the repository, shared by hand,
    # so it keeps its mode and is fsynced before the rename (io/whole_file.py).
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, text.encode("utf-8"), written, name)
