"""Scores the fetched package photographs of one split the way `pipeline/evaluation.py` scores its
builtin set (the image stage's `normalise`, then each detector: `score_set`), and reports them
with `metrics.evaluate_rows`.

Three labelled members are arrays, not image files (scipy's face.dat and ascent.dat, pywt's
aero.npz); they are decoded here without pickle's code execution: ascent.dat is a pickled list
of lists of ints, read by an unpickler that refuses every global.
"""

from __future__ import annotations

import bz2
import functools
import io
import json
import math
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import DetectorSpec
from pipeline.evaluation import Sample, score_set
from pipeline.io.regular_files import open_local_regular, read_at_most
from pipeline.photo_sets.fetch import Row, load_rows, sha256_hex
from pipeline.photo_sets.metrics import evaluate_rows
from pipeline.photo_sets.scores_file import MAX_SCORES_BYTES
from pipeline.stages.image import STORAGE_RULE_VERSION, ImageConfig

MAX_ARRAY_BYTES = 64_000_000


class PhotoSetError(RuntimeError):
    """The photographs folder does not hold the labelled files (run the fetch first)."""


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # type: ignore[override]
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain lists and ints are read")


def _array_image(data: bytes, suffix: str) -> Image.Image:
    if suffix == ".npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            array = archive[archive.files[0]]
    elif data[:3] == b"BZh":  # scipy face.dat: bz2 of raw 768x1024 RGB
        raw = bz2.BZ2Decompressor().decompress(data, MAX_ARRAY_BYTES)
        array = np.frombuffer(raw, dtype=np.uint8).reshape(768, 1024, 3)
    else:  # scipy ascent.dat: a pickled 512x512 list of lists
        array = np.array(_NoGlobals(io.BytesIO(data)).load(), dtype=np.uint8)
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))


# Members that hold pixels as numpy data (scipy's .dat, pywt's .npz), not an image file a run could download.
ARRAY_SUFFIXES = (".dat", ".npz")


def open_photo(data: bytes, row: Row) -> Image.Image:
    suffix = Path(row.file_name).suffix
    if suffix in ARRAY_SUFFIXES:
        return _array_image(data, suffix).convert("RGB")
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


MAX_PHOTO_BYTES = 1 << 30  # the largest labelled photograph is ~40 MB


def load_samples(photos: Path, rows: list[Row]) -> list[Sample]:
    """The split's photographs as samples, decoded only when their pixels are asked for; each file's
    sha256 is checked again (the folder is ordinary disk, anyone may have written to it)."""
    missing = [row.file_name for row in rows if not (photos / row.file_name).is_file()]
    if missing:
        raise PhotoSetError(f"{len(missing)} labelled photograph(s) missing under {photos} (first: {missing[0]}); "
                            f"fetch them: python -m pipeline.photo_sets.fetch {photos} --split=...")
    samples = []
    for row in rows:
        path = photos / row.file_name
        try:
            with open_local_regular(str(path)) as file:  # that file, whatever is put under its name meanwhile
                # never held whole to learn it is not ours: its stat first, then its reads bounded, as a file whose
                # stat says 0 bytes may read on (a link to Linux's /proc/self/pagemap: 256 GiB, read until memory ran
                # out before its sha256 could be checked)
                if os.fstat(file.fileno()).st_size > MAX_PHOTO_BYTES:
                    raise PhotoSetError(f"{path} is over {MAX_PHOTO_BYTES} bytes: not the labelled file")
                data = read_at_most(file, MAX_PHOTO_BYTES + 1)
        except (OSError, ValueError) as err:  # gone, or replaced by a named pipe, since it was found a file
            raise PhotoSetError(f"{path}: cannot be read ({err}): fetch it again") from None
        if len(data) > MAX_PHOTO_BYTES:
            raise PhotoSetError(f"{path} is over {MAX_PHOTO_BYTES} bytes: not the labelled file")
        if sha256_hex(data) != row.sha256:
            raise PhotoSetError(f"{photos / row.file_name} is not the labelled file (sha256 differs)")
        arrays = Path(row.file_name).suffix in ARRAY_SUFFIXES
        samples.append(Sample(f"{row.package}:{row.member_path}", row.has_human,
                              functools.partial(open_photo, data, row), None if arrays else data))
    return samples


STORED_FROM = "each file's own bytes, as a run stores a download"
DECODED_FIRST = "pixels decoded first (evaluate before 2026-12-01)"


@dataclass(frozen=True)
class Storage:
    """How the scored images were stored: what a record keeps so that scores are never mistaken for
    those of another storage rule."""

    resize_reducing_gap: float
    stored_from: str
    storage_rule_version: int


def earlier_scores(path: Path, rows: list[Row], specs: list[DetectorSpec]
                   ) -> tuple[list[dict[str, float]], Storage]:
    """Each row's scores from an earlier `evaluate --json` of the same split, refused when an image
    or a selected detector's score is missing from it; and how its images were stored: the resize rule
    (a file from before the option was made by the Lanczos-only resize: 0), from what (a file from
    before `stored_from` was recorded: pixels decoded first) and by which version of the storage code's
    rule (a file from before the version was recorded: 1)."""
    earlier = _earlier_json(path)
    if not isinstance(earlier, dict) or not isinstance(earlier.get("scores"), dict):
        raise PhotoSetError(f"{path}: not an evaluate --json result (no object of scores)")
    storage = _storage(earlier, path)
    named = earlier["scores"]
    # A probe score is only this decision's when the same probe file made it: fit_probe's out-of-fold files name
    # no file (each split's scores came from another fit), and a file from another probe version names its own.
    made_by = earlier.get("context_probes") or {}
    if not isinstance(made_by, dict):  # a text or a list ended in a bare AttributeError ("the job failed", exit 1)
        raise PhotoSetError(f"{path}: context_probes is {repr(made_by)[:60]}, not an object (each probe score's file)")
    other = sorted(name for name, sha256 in probe_sources(specs).items() if made_by.get(name) != sha256)
    if other:
        raise PhotoSetError(f"{path}: the scores {', '.join(other)} were not made by the probe files the registry "
                            "names (score the split again with this registry)")
    # Context classes too: a fusion model may read them, and one left out would read as 0 (rule_for checks the
    # registry declares them; this, that the file has them).
    wanted = {spec.score_name(cls) for spec in specs for cls in spec.scored_classes}
    out = []
    for row in rows:
        scores = named.get(f"{row.package}:{row.member_path}")
        if not isinstance(scores, dict) or not wanted <= set(scores):
            raise PhotoSetError(f"{path} has no scores of {sorted(wanted)} for {row.package}:{row.member_path}")
        # A score no run could give (NaN, infinite, text) read as a kept photograph: a run rejects such a photo.
        if not all(type(scores[name]) in (int, float) and math.isfinite(scores[name]) for name in wanted):
            raise PhotoSetError(f"{path}: a score of {row.package}:{row.member_path} is no finite number")
        out.append({name: float(value) for name, value in scores.items() if name in wanted})
    return out, storage


def _earlier_json(path: Path) -> Any:
    """What an earlier `evaluate --json` (`--scores`) holds, read as the fit scripts read a scores file: a regular file
    of at most MAX_SCORES_BYTES, else PhotoSetError in one line. Read whole as whatever it was, a named pipe
    (`--scores=<(cmd)`, a file replaced by one) was waited on for a writer for good, and a link to /dev/zero read until
    memory ran out."""
    try:
        with open_local_regular(str(path)) as file:  # never a wait for a named pipe's writer
            data = read_at_most(file, MAX_SCORES_BYTES + 1)
    except ValueError:
        raise PhotoSetError(f"{path}: no regular file (a named pipe, a device or a folder): give the file "
                            "`evaluate --json` wrote") from None
    except OSError as err:
        raise PhotoSetError(f"{path}: {type(err).__name__}: {err}"[:300]) from None
    if len(data) > MAX_SCORES_BYTES:
        raise PhotoSetError(f"{path}: over {MAX_SCORES_BYTES:,} bytes, more than evaluate writes; read no further")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PhotoSetError(" ".join(f"{path}: {type(err).__name__}: {err}".split())[:300]) from None


def _storage(earlier: dict, path: Path) -> Storage:
    gap = earlier.get("resize_reducing_gap", 0.0)
    if isinstance(gap, bool) or not isinstance(gap, int | float):
        raise PhotoSetError(f"{path}: resize_reducing_gap is {gap!r}, not a number")
    stored_from = earlier.get("stored_from", DECODED_FIRST)
    if not isinstance(stored_from, str):
        raise PhotoSetError(f"{path}: stored_from is {stored_from!r}, not a text")
    version = earlier.get("storage_rule_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise PhotoSetError(f"{path}: storage_rule_version is {version!r}, not a whole number")
    return Storage(float(gap), stored_from, version)


def storage_of(scores_from: str | None, reducing_gap: float) -> Storage:
    """How the images behind `evaluate_photos`'s scores were stored, known before scoring: read from the
    earlier file when the scores come from one, else this call's rule."""
    if scores_from:
        path = Path(scores_from)
        earlier = _earlier_json(path)
        if not isinstance(earlier, dict):
            raise PhotoSetError(f"{path}: not an evaluate --json result")
        return _storage(earlier, path)
    return Storage(reducing_gap, STORED_FROM, STORAGE_RULE_VERSION)


def evaluate_photos(photos: Path, split: str, specs: list[DetectorSpec], runtime: RuntimeConfig,
                    max_side: int = 512, fusion: Fusion | None = None, scores_from: str | None = None,
                    reducing_gap: float = ImageConfig.resize_reducing_gap) -> dict:
    rows = load_rows(split)
    if scores_from:
        # the rule the earlier scores' images were stored by, and from what, not this call's
        scores, storage = earlier_scores(Path(scores_from), rows, specs)
    else:
        scores = score_set(load_samples(photos, rows), specs, runtime, max_side, reducing_gap)
        storage = Storage(reducing_gap, STORED_FROM, STORAGE_RULE_VERSION)
    result = evaluate_rows(rows, scores, specs, fusion)
    result["split"] = split
    result.update(asdict(storage))  # how the scored images were stored
    result["context_probes"] = probe_sources(specs)  # which probe file made each probe score
    return result


def probe_sources(specs: list[DetectorSpec]) -> dict[str, str]:
    """{score name: the sha256 of the probe file that computes it} for the selected detectors' probes."""
    return {spec.score_name(probe.cls): probe.sha256 for spec in specs for probe in spec.probes}
