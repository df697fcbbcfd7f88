"""Linear probes on a detector's intermediate features: context classes a pass already computes.

A detector's network computes far more than the scores its decoder reads. open_nsfw, a ResNet-50 that every
default run puts every photo through (for nsfw), ends in a 1,024-number description of the whole scene; a
logistic on it, trained on labelled photographs to tell "a human is in it" from clean, is one more score for
the fused decision at no inference cost (docs/held-out-evaluation.md, "A scene probe on open_nsfw's features").

A registry entry names its probes in its decoder, each a context class (read by a fusion model, decided on by
no threshold) with a file and that file's sha256:

    "decoder": {..., "context_probes": {"scene_person": {"file": "scene_probe_v1.json", "sha256": "..."}}}

The file (written by `python -m pipeline.photo_sets.fit_probe`) holds the tensor it reads, a transform and the
weights, already folded with the standardisation the fit used:

    {"input": "Reshape:0", "transform": "log1p", "weights": [1024 numbers], "bias": -1.2}
    score = sigmoid(bias + sum_i weights[i] * transform(x_i)),   log1p: log(1 + max(x, 0))

The session is asked for `input` as one more output (`handler._prepared` adds it to the graph's outputs when
the file does not list it). The file is read and checked when the registry is, so a wrong sha256 or a broken
file fails at launch, and its numbers travel with the detector's spec to the workers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from pipeline.detectors.model_json import NotUTF8, comment_problems, unique_keys, unknown_keys, utf8_text
from pipeline.io.file_reads import open_reader

TRANSFORMS = ("identity", "log1p")
# A probe reads a pooled feature vector (ResNet-50: 2,048; open_nsfw: 1,024), not a feature map: bounded so a
# hostile file cannot make every view multiply through a huge vector, nor the registry read a huge file.
MAX_WEIGHTS = 65_536
MAX_PROBE_BYTES = 4 * 1024 * 1024
# Weights a standardised logistic gives are a few units; bounded so that a score is never inf - inf.
MAX_WEIGHT = 1e6
# Probes per registry entry: each is a vector multiplied on every view and carried to every worker.
MAX_PROBES = 16


class ProbeError(ValueError):
    pass


@dataclass(frozen=True)
class Probe:
    """One context class scored from an intermediate tensor of the detector's own pass."""

    cls: str  # the context class name ("scene_person"): its score is "<detector>.<cls>"
    file: str  # resolved path or URI of the probe file
    sha256: str
    input: str  # the graph tensor it reads (made an output of the session)
    transform: str
    weights: tuple[float, ...]
    bias: float

    @cached_property
    def _vector(self) -> np.ndarray:  # made once per process, not per batch (the tuple is what compares equal)
        return np.asarray(self.weights, dtype=np.float64)

    def scores(self, values: np.ndarray, rows: int) -> np.ndarray:
        """The probe's score for each of `rows` batch rows of its tensor's values (any shape [rows, ...] that
        holds len(weights) numbers a row, e.g. [rows, 1024] or [rows, 1024, 1, 1])."""
        values = np.asarray(values, dtype=np.float64)
        # The batch must be the tensor's first axis: a tensor laid out otherwise ([C, N] after a transpose) would
        # reshape into rows of mixed photographs, each score then depending on the batch it came in.
        if values.ndim < 2 or values.shape[0] != rows:
            raise ValueError(f"probe {self.cls}: tensor {self.input} has shape {values.shape}, not [{rows}, ...] "
                             "(the batch first)")
        flat = values.reshape(rows, -1)
        if flat.shape[1] != len(self.weights):
            raise ValueError(f"probe {self.cls}: tensor {self.input} has {flat.shape[1]} numbers a row, "
                             f"the probe {len(self.weights)} weights")
        if self.transform == "log1p":
            flat = log1p_features(flat)
        z = flat @ self._vector + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def log1p_features(x: np.ndarray) -> np.ndarray:
    """The "log1p" transform: log(1 + max(x, 0)), in float64 (ReLU features span decades). `fit_probe` fits on it."""
    return np.log1p(np.maximum(np.asarray(x, dtype=np.float64), 0.0))


def _number(value: object) -> bool:
    """A finite number within +-MAX_WEIGHT (an int of 400 digits would make math.isfinite raise OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_WEIGHT
    return math.isfinite(value) and abs(value) <= MAX_WEIGHT


# What fit_probe writes: the numbers, and beside them a _comment, fitted_on and options that describe the probe. A key
# outside these is refused, not ignored (a misspelt "transfrom" left the probe reading raw features, another score).
PROBE_KEYS = frozenset({"_comment", "input", "transform", "weights", "bias", "fitted_on", "options"})


def _description_problems(raw: dict[str, Any]) -> list[str]:
    """A key no probe holds, or a description of another type than fit_probe writes (none was looked at)."""
    problems = unknown_keys(raw, PROBE_KEYS, "a probe") + comment_problems(raw)
    if "fitted_on" in raw and not isinstance(raw["fitted_on"], str):
        problems.append(f"fitted_on must be a text, not {type(raw['fitted_on']).__name__}")
    if "options" in raw and not isinstance(raw["options"], dict):
        problems.append(f"options must be an object, not {type(raw['options']).__name__}")
    return problems


def parse_probe(cls: str, file: str, sha256: str, data: bytes) -> Probe:
    """A probe from its file's bytes, refused (ProbeError naming what is wrong) unless the bytes have `sha256`
    and hold a usable probe."""
    where = f"context probe {cls!r} ({file})"
    if len(data) > MAX_PROBE_BYTES:
        raise ProbeError(f"{where}: {len(data)} bytes; a probe file is at most {MAX_PROBE_BYTES}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ProbeError(f"{where}: sha256 {digest}, the registry says {sha256}")
    try:
        text = utf8_text(data)
    except NotUTF8 as err:
        raise ProbeError(f"{where}: {err}") from None
    try:
        raw = json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as err:  # RecursionError: arrays nested 100,000 deep
        raise ProbeError(f"{where}: not JSON ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(raw, dict):
        raise ProbeError(f"{where}: not a JSON object")
    problems = _description_problems(raw)
    if not (isinstance(raw.get("input"), str) and raw["input"] and len(raw["input"]) <= 1000):
        problems.append("input must name the graph tensor the probe reads")
    if raw.get("transform", "identity") not in TRANSFORMS:
        problems.append(f"transform must be one of {', '.join(TRANSFORMS)}")
    weights = raw.get("weights")
    if not (isinstance(weights, list) and 1 <= len(weights) <= MAX_WEIGHTS):
        problems.append(f"weights must be a list of 1 .. {MAX_WEIGHTS} numbers")
    elif not all(_number(w) for w in weights):
        problems.append(f"weights must be finite numbers within +-{MAX_WEIGHT:g}")
    if not _number(raw.get("bias")):
        problems.append(f"bias must be a finite number within +-{MAX_WEIGHT:g}")
    if problems:
        raise ProbeError(f"{where}: " + "; ".join(problems))
    assert isinstance(weights, list)  # for the type checker: a problem above otherwise
    return Probe(cls=cls, file=file, sha256=sha256, input=raw["input"], transform=raw.get("transform", "identity"),
                 weights=tuple(float(w) for w in weights), bias=float(raw["bias"]))


def _read_bounded(path: str) -> bytes:
    """The file's bytes, local or on any Beam filesystem, at most one past MAX_PROBE_BYTES (then refused)."""
    with open_reader(path) as handle:
        return handle.read(MAX_PROBE_BYTES + 1)


def read_probes(entries: object, resolve: Any) -> tuple[Probe, ...]:
    """`decoder.context_probes` ({class: {"file", "sha256"}}) as probes, each file read through `resolve` (a
    relative name -> the path beside the registry) and checked."""
    if not isinstance(entries, Mapping) or not entries:
        raise ProbeError('decoder.context_probes maps each context class to {"file": ..., "sha256": ...}')
    if len(entries) > MAX_PROBES:
        raise ProbeError(f"decoder.context_probes names {len(entries)} probes; at most {MAX_PROBES}")
    probes = []
    for cls, entry in entries.items():
        if not (isinstance(cls, str) and cls.isidentifier()):
            raise ProbeError(f"context probe {cls!r}: the class must be a plain name")
        if not (isinstance(entry, Mapping) and isinstance(entry.get("file"), str) and entry["file"]
                and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64):
            raise ProbeError(f'context probe {cls!r}: needs "file" and "sha256" (64 hex digits)')
        path = resolve(entry["file"])
        try:
            data = _read_bounded(path)
        except (OSError, ValueError) as err:
            raise ProbeError(f"context probe {cls!r}: cannot read {path}: {err}") from None
        probes.append(parse_probe(cls, path, entry["sha256"].lower(), data))
    return tuple(probes)
