"""One calibrated "is there a person" score from several detectors' scores.

Each detector sees something different (CenterFace faces, SSDLite and NanoDet COCO person boxes,
open_nsfw skin), and each alone is weak where the others are strong: a church tower is a weak
person box and nothing else, a hand holding a bottle is several weak signals together.
Independent thresholds cannot tell those apart; a logistic model over the detectors' scores can:

    fused = sigmoid(bias + sum_i weight_i * logit(clip(score_i)))

in logit space, so several weak signals add up, and a detector's pull grows without bound as its
score nears 1 (how far it alone can move the decision is its weight: the fitted weights say how
much each detector's score told people from clean photos apart on the tuning set).

The model is data, not code: `models/fusion.json`, named with its sha256 in `models/registry.json`,
fitted by `python -m pipeline.photo_sets.fit_fusion` on labelled photographs (the *tuning* part,
and held-out splits only once they are spent: a model is measured on a split it was not fitted on).
Its two thresholds play the roles the per-detector thresholds played: `reject_at`
rejects as `human`, [`review_from`, `reject_at`) holds for review.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.detectors.registry import BUILTIN_REGISTRY, DetectorSpec, RegistryError, resolve_file
from pipeline.io.files import read_bytes

# Scores are clipped before the logit: a detector's 0.0 ("nothing at all") and 1.0 would otherwise be
# infinite, and one of them would outvote every other detector however large the others' weights.
EPSILON = 1e-4


def logit(score: float) -> float:
    p = min(max(float(score), EPSILON), 1.0 - EPSILON)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class Fusion:
    features: tuple[str, ...]  # "<detector>.<class>" score names, in the order of `weights`
    weights: tuple[float, ...]
    bias: float
    reject_at: float
    review_from: float
    sha256: str = ""
    fitted_on: str = ""
    file: str = ""  # the file's name (not its folder), as the manifest records it
    # Per detector, the model refitted on the same tuning images without it: the ablation table.
    ablation: tuple[tuple[str, Fusion], ...] = ()

    def without(self, detector: str) -> Fusion | None:
        return dict(self.ablation).get(detector)

    @property
    def detectors(self) -> frozenset[str]:
        return frozenset(feature.split(".", 1)[0] for feature in self.features)

    def score(self, scores: Mapping[str, float]) -> float:
        """The fused probability of a person. A missing score counts as 0 (the detector saw nothing)."""
        return sigmoid(self.bias + sum(w * logit(scores.get(f, 0.0)) for f, w in zip(self.features, self.weights,
                                                                                    strict=True)))

    def explain(self, scores: Mapping[str, float]) -> str:
        """The fused score and the detectors' scores behind it, strongest pull first: the rejection detail."""
        pulls = sorted(((w * logit(scores.get(f, 0.0)), f) for f, w in zip(self.features, self.weights, strict=True)),
                       reverse=True)
        # A missing score counts as 0 but is named as such: the Detect stage skips a detector for a
        # photo already rejected as human (decision.py), and the detail must not read as "saw nothing".
        parts = ", ".join(f"{f} {scores[f]:.3f}" if f in scores else f"{f} not run" for _, f in pulls)
        return f"fused {self.score(scores):.3f} ({parts})"


def _model(raw: dict[str, Any], digest: str, where: str) -> Fusion:
    try:
        fusion = Fusion(features=tuple(str(f) for f in raw["features"]),
                        weights=tuple(float(w) for w in raw["weights"]), bias=float(raw["bias"]),
                        reject_at=float(raw["reject_at"]), review_from=float(raw["review_from"]),
                        sha256=digest, fitted_on=str(raw.get("fitted_on", "")),
                        ablation=tuple((str(name), _model(dict(other), digest, f"{where}: ablation {name}"))
                                       for name, other in sorted(dict(raw.get("ablation") or {}).items())))
    except (KeyError, TypeError, ValueError) as err:
        raise RegistryError(f"{where}: not a fusion model: {type(err).__name__}: {err}") from None
    problems = []
    if len(fusion.features) != len(fusion.weights) or not fusion.features:
        problems.append("features and weights must be non-empty lists of the same length")
    if any("." not in feature for feature in fusion.features):
        problems.append("each feature is DETECTOR.CLASS")
    if not all(math.isfinite(x) for x in (*fusion.weights, fusion.bias)):
        problems.append("weights and bias must be finite numbers")
    if not 0.0 <= fusion.review_from <= fusion.reject_at <= 1.0:
        problems.append("0 <= review_from <= reject_at <= 1 must hold")
    if problems:
        raise RegistryError(f"{where}: " + "; ".join(problems))
    return fusion


def parse_fusion(data: bytes, where: str) -> Fusion:
    try:
        raw = json.loads(data)
    except ValueError as err:
        raise RegistryError(f"{where}: not a fusion model: {err}") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: not a fusion model: a JSON object is expected")
    return _model(raw, hashlib.sha256(data).hexdigest(), where)


def read_fusion(path: str, sha256: str = "") -> Fusion:
    """The fusion model at `path`, refused when `sha256` is given and differs (a changed model file
    changes which photos are kept: it must be a recorded, deliberate change)."""
    try:
        data = read_bytes(path)
    except (OSError, ValueError) as err:
        raise RegistryError(f"cannot read fusion model {path}: {err}") from None
    fusion = replace(parse_fusion(data, path), file=path.rstrip("/").rsplit("/", 1)[-1])
    if sha256 and fusion.sha256 != sha256.lower():
        raise RegistryError(f"fusion model {path} has sha256 {fusion.sha256}, the registry says {sha256}")
    return fusion


def heldout_figures(fusion: Fusion) -> list[dict[str, Any]] | None:
    """Every held-out measurement of exactly this model (models/fusion*_heldout.json: one file per
    shipped model, the default's `fusion_heldout.json`, written from `evaluate --photos --split=...`),
    oldest first, each with its split, date, size, recall and keep-rate (and how the scored images were
    stored, where a record says: a later rule moves some scores); None when this model was not measured."""
    for path in sorted(BUILTIN_REGISTRY.parent.glob("fusion*_heldout.json")):
        figures = json.loads(path.read_text())
        if figures.get("fusion_sha256") == fusion.sha256:
            return [{key: entry[key] for key in ("split", "date", "images", "recall", "keep_rate", "stored_by")
                     if key in entry}
                    for entry in figures.get("evaluations", [])] or None
    return None


def builtin_fusion() -> Fusion | None:
    """The fusion model `models/registry.json` names ("fusion": {"file", "sha256"}), if it names one."""
    entry = json.loads(read_bytes(str(BUILTIN_REGISTRY))).get("fusion")
    if not entry:
        return None
    return read_fusion(resolve_file(str(entry["file"]), str(BUILTIN_REGISTRY)), str(entry["sha256"]))


def choose_fusion(choice: str, specs: list[DetectorSpec]) -> Fusion | None:
    """--fusion: 'none'; 'default' = the built-in model when every detector it reads is selected
    (with fewer detectors the per-detector thresholds decide, as before fusion existed); or a path."""
    if choice == "none" or not specs:
        return None
    if choice in ("", "default"):
        fusion = builtin_fusion()
        selected = {spec.name for spec in specs}
        return fusion if fusion is not None and fusion.detectors <= selected else None
    return read_fusion(choice)


def check_overrides(fusion: Fusion | None, specs: list[DetectorSpec], overridden: list[str]) -> None:
    """A threshold given for a human class the fusion model decides would be ignored: refuse it at
    launch (nsfw classes keep their own thresholds, even when the model also reads their score)."""
    human = {spec.score_name(cls) for spec in specs for cls in spec.human_classes}
    covered = sorted(name for name in overridden if fusion is not None and name in fusion.features and name in human)
    if covered:
        raise RegistryError(f"{', '.join(covered)} decided by the fusion model, not by a threshold: "
                            "use --fusion=none to set per-detector thresholds")
