"""One calibrated "is there a person" score from several detectors' scores.

Each detector sees something different (CenterFace faces, NanoDet's COCO and OIDv4's Open Images person
boxes; SSDLite's boxes and open_nsfw's skin in earlier models), and each alone is weak where the others
are strong: a church tower is a weak person box and nothing else, a hand holding a bottle is several
weak signals together.
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

A model file may instead hold gradient-boosted trees over the same logits ("trees": each a list of
nodes [feature, threshold, left, right, value], feature -1 for a leaf; "baseline": the log-odds they
start from; `fit_fusion --model=monotone_trees`):

    fused = sigmoid(baseline + sum_t leaf_t(logit(clip(score))))

where a tree can weigh one detector by another. Every split must keep the leaves on its left at or
below those on its right, checked when the file is read: then a higher score from any detector never
lowers the fused score, as with the logistic's non-negative weights (the Detect stage relies on it to
decide from partial scores).

Either kind may carry floors ("floors": {"centerface.face": 0.8}): a feature whose score is at or above
its floor rejects the photo on its own (the fused score is raised to at least `reject_at`), whatever the
others say. A logistic cannot express that: its other features can outvote a clear face, and a model
whose context columns pull every photo without a boat or a truck down let through a plain portrait
(CenterFace 0.83, heldout12) and a smiling woman in a banner (0.86, heldout13). A floor only raises
the fused score, so the model stays monotone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from pipeline.detectors.registry import (
    BUILTIN_REGISTRY,
    DetectorSpec,
    RegistryError,
    fusion_entry,
    json_text,
    read_json_bytes,
    read_registry,
    resolve_file,
    unique_keys,
)

# Scores are clipped before the logit: a detector's 0.0 ("nothing at all") and 1.0 would otherwise be
# infinite, and one of them would outvote every other detector however large the others' weights.
EPSILON = 1e-4
# A logistic's weights and bias: within this, no sum of weighted logits (each at most |weight| x 9.2) overflows.
MAX_WEIGHT = 1e6


def logit(score: float) -> float:
    p = min(max(float(score), EPSILON), 1.0 - EPSILON)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class TreeNode:
    """One node of a fusion tree: a split (`feature` >= 0: go `left` when the feature's logit is at most
    `threshold`, else `right`) or a leaf (`feature` = -1) adding `value` to the log-odds."""

    feature: int
    threshold: float
    left: int
    right: int
    value: float


Tree = tuple[TreeNode, ...]  # node 0 is the root


def tree_value(tree: Tree, x: Sequence[float]) -> float:
    node = tree[0]
    while node.feature >= 0:
        node = tree[node.left] if x[node.feature] <= node.threshold else tree[node.right]
    return node.value


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
    # A trees model (then `weights` is empty and `bias` unused): its trees and the log-odds they start from.
    trees: tuple[Tree, ...] = ()
    baseline: float = 0.0
    # (feature, score) pairs: a score at or above its floor rejects on its own (the module docstring).
    floors: tuple[tuple[str, float], ...] = ()

    def without(self, detector: str) -> Fusion | None:
        return dict(self.ablation).get(detector)

    @property
    def kind(self) -> str:
        return "monotone_trees" if self.trees else "logistic"

    @property
    def detectors(self) -> frozenset[str]:
        return frozenset(feature.split(".", 1)[0] for feature in self.features)

    @cached_property
    def monotone(self) -> bool:
        """Whether a higher score from any detector can only raise the fused score: non-negative weights,
        or trees whose every split keeps its left leaves at or below its right ones (checked here too, not
        only when a file is read: a model may be built in code)."""
        if self.trees:
            return not _tree_problems(self.trees, len(self.features))
        return all(weight >= 0 for weight in self.weights)

    def score(self, scores: Mapping[str, float]) -> float:
        """The fused probability of a person, raised to `reject_at` where a floor is reached. A missing score
        counts as 0 (the detector saw nothing)."""
        if self.trees:
            x = [logit(scores.get(f, 0.0)) for f in self.features]
            fused = sigmoid(self.baseline + sum(tree_value(tree, x) for tree in self.trees))
        else:
            fused = sigmoid(self.bias + sum(w * logit(scores.get(f, 0.0))
                                            for f, w in zip(self.features, self.weights, strict=True)))
        return max(fused, self.reject_at) if self.reaches_floor(scores) else fused

    def reaches_floor(self, scores: Mapping[str, float]) -> bool:
        """Whether any floor is reached (asked per photo and per partial score: no text is built)."""
        return any(scores.get(feature, 0.0) >= floor for feature, floor in self.floors)

    def floored(self, scores: Mapping[str, float]) -> list[str]:
        """The floors these scores reach, as "<feature> <score> >= <floor>" (empty: none), for a rejection's detail."""
        return [f"{feature} {scores[feature]:.3f} >= floor {floor}" for feature, floor in self.floors
                if scores.get(feature, 0.0) >= floor]

    def explain(self, scores: Mapping[str, float]) -> str:
        """The fused score and the detectors' scores behind it, strongest pull first (for trees, which have
        no one weight per detector: highest score first): the rejection detail."""
        weights = self.weights or (1.0,) * len(self.features)
        pulls = sorted(((w * logit(scores.get(f, 0.0)), f) for f, w in zip(self.features, weights, strict=True)),
                       reverse=True)
        # A missing score counts as 0 but is named as such: the Detect stage skips a detector for a
        # photo already rejected as human (decision.py), and the detail must not read as "saw nothing".
        parts = ", ".join(f"{f} {scores[f]:.3f}" if f in scores else f"{f} not run" for _, f in pulls)
        floored = self.floored(scores)
        return f"fused {self.score(scores):.3f} ({parts}{'; ' if floored else ''}{'; '.join(floored)})"


def model_summary(fusion: Fusion) -> dict[str, Any]:
    """What a manifest or an evaluation record says of the model beside its sha256: a logistic's weights
    and bias (as always), or, for trees, their kind and number (the file itself, named by its sha256,
    holds them)."""
    floors = {"floors": dict(fusion.floors)} if fusion.floors else {}
    if fusion.trees:
        return {"kind": fusion.kind, "trees": len(fusion.trees), "baseline": fusion.baseline, **floors}
    return {"weights": list(fusion.weights), "bias": fusion.bias, **floors}


def _tree(raw: Any) -> Tree:
    """A tree as the file holds it: a list of nodes, each [feature, threshold, left, right, value]."""
    nodes = []
    for node in raw:
        feature, threshold, left, right, value = node
        if _whole(feature) < -1:
            raise ValueError(f"feature {feature}: -1 marks a leaf, 0 and up a feature")
        nodes.append(TreeNode(feature=feature, threshold=_real(threshold), left=_whole(left), right=_whole(right),
                              value=_real(value)))
    return tuple(nodes)


def _floors(raw: Any) -> tuple[tuple[str, float], ...]:
    """A file's floors ({"<feature>": score}) as sorted pairs."""
    if not isinstance(raw, dict):
        raise ValueError("floors must be an object of feature: score")
    return tuple(sorted((str(feature), _real(floor)) for feature, floor in raw.items()))


def _texts(value: Any) -> tuple[str, ...]:
    """A JSON list of texts (features): a text alone, an object or a number among them is refused. Each was taken
    as str() of whatever stood there: "features": {"a.x": 1} read its keys, 1.5 a feature named "1.5"."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"features must be a list of texts (DETECTOR.CLASS), not {_shown(value)}")
    return tuple(value)


def _reals(value: Any) -> tuple[float, ...]:
    """A JSON list of numbers (weights). Each was float() of whatever stood there, so "weights": "123" was the
    weights 1, 2, 3 of a three-feature model, ["0.5"] a weight of 0.5 and true a weight of 1."""
    if not isinstance(value, list):
        raise ValueError(f"weights must be a list of numbers, not {_shown(value)}")
    return tuple(_real(item) for item in value)


def _shown(value: Any) -> str:
    """A wrong value's type, and the start of it where it is a list or a scalar."""
    return f"{type(value).__name__} {json.dumps(value)[:40]}" if isinstance(value, list | str | int | float) \
        else type(value).__name__


# What fit_fusion writes (kind, tuning, fitted_on and options describe the model; the rest decides). A key outside
# these is refused, not ignored: a misspelt "flors" left the model without its floors, a different decision.
MODEL_KEYS = frozenset({"kind", "features", "weights", "bias", "baseline", "trees", "floors", "reject_at",
                        "review_from", "ablation", "tuning", "fitted_on", "options"})


def _description_problems(raw: dict[str, Any]) -> list[str]:
    """What fit_fusion writes beside the numbers, each of its one type: str() took a fitted_on of any type (an object
    or a list was a model "fitted on" its repr), and tuning and options were never looked at."""
    problems = [f"{key} must be a text, not {_shown(raw[key])}" for key in ("kind", "fitted_on")
                if key in raw and not isinstance(raw[key], str)]
    if "tuning" in raw and not (isinstance(raw["tuning"], dict) and all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in raw["tuning"].values())):
        problems.append(f"tuning must be an object of figures (numbers), not {_shown(raw['tuning'])}")
    if "options" in raw and not isinstance(raw["options"], dict):
        problems.append(f"options must be an object of the options it was fitted with, not {_shown(raw['options'])}")
    return problems


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def _real(value: Any) -> float:
    """A JSON number as a float; text and booleans are refused (float("1.5") and float(True) would pass)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _leaf_ranges(tree: Tree) -> list[tuple[float, float]]:
    """Per node, (lowest, highest) leaf value under it; children come after their parent (checked first),
    so one pass from the last node up fills them without recursion, however deep the tree."""
    ranges: list[tuple[float, float]] = [(0.0, 0.0)] * len(tree)
    for index in range(len(tree) - 1, -1, -1):
        node = tree[index]
        if node.feature < 0:
            ranges[index] = (node.value, node.value)
        else:
            (low_left, high_left), (low_right, high_right) = ranges[node.left], ranges[node.right]
            ranges[index] = (min(low_left, low_right), max(high_left, high_right))
    return ranges


def _tree_problems(trees: tuple[Tree, ...], features: int) -> list[str]:
    """What makes these trees unusable: a node pointing outside its tree or back up it (children come
    after their parent, so every walk ends), a split on no feature, a number that is not finite, or a split
    whose left leaves are not all at or below its right ones (the fused score would not be monotone)."""
    for number, tree in enumerate(trees):
        if not tree:
            return [f"tree {number} has no nodes"]
        for index, node in enumerate(tree):
            if not all(math.isfinite(v) for v in (node.threshold, node.value)):
                return [f"tree {number} node {index}: threshold and value must be finite numbers"]
            if node.feature < 0:
                continue
            if node.feature >= features:
                return [f"tree {number} node {index} splits on feature {node.feature} of {features}"]
            if not index < node.left < len(tree) or not index < node.right < len(tree):
                return [f"tree {number} node {index}: children must come after it, inside the tree"]
        ranges = _leaf_ranges(tree)
        for index, node in enumerate(tree):
            if node.feature >= 0 and ranges[node.left][1] > ranges[node.right][0]:
                return [f"tree {number} node {index}: a leaf on the left above one on the right (not monotone)"]
    return []


def _model(raw: Any, digest: str, where: str) -> Fusion:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: not a fusion model: a JSON object is expected")
    unknown = sorted(set(raw) - MODEL_KEYS)
    if unknown:
        named = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise RegistryError(f"{where}: not a fusion model: unknown key(s) {named}; a model holds "
                            f"{', '.join(sorted(MODEL_KEYS))}")
    if described := _description_problems(raw):
        raise RegistryError(f"{where}: not a fusion model: {'; '.join(described)}")
    is_trees = "trees" in raw
    if is_trees and (not isinstance(raw["trees"], list) or not raw["trees"] or "weights" in raw or "bias" in raw):
        raise RegistryError(f"{where}: a trees model holds a non-empty list of trees and no weights or bias")
    ablation = raw.get("ablation") or {}
    if not isinstance(ablation, dict):
        raise RegistryError(f"{where}: not a fusion model: ablation must be an object of detector: model")
    try:
        trees = tuple(_tree(tree) for tree in raw["trees"]) if is_trees else ()
        fusion = Fusion(features=_texts(raw["features"]),
                        weights=() if trees else _reals(raw["weights"]),
                        bias=0.0 if trees else _real(raw["bias"]),
                        reject_at=_real(raw["reject_at"]), review_from=_real(raw["review_from"]),
                        sha256=digest, fitted_on=raw.get("fitted_on", ""),
                        ablation=tuple((name, _model(other, digest, f"{where}: ablation {name}"))
                                       for name, other in sorted(ablation.items())),
                        trees=trees, baseline=_real(raw["baseline"]) if trees else 0.0,
                        floors=_floors(raw.get("floors", {})))
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # a 400-digit number overflows a float
        raise RegistryError(f"{where}: not a fusion model: {type(err).__name__}: {err}") from None
    problems = []
    if fusion.trees:
        problems += _tree_problems(fusion.trees, len(fusion.features))
        if not math.isfinite(fusion.baseline):
            problems.append("baseline must be a finite number")
        if not fusion.features or len(set(fusion.features)) != len(fusion.features):
            problems.append("a trees model reads a non-empty list of distinct features")
    elif len(fusion.features) != len(fusion.weights) or not fusion.features:
        problems.append("features and weights must be non-empty lists of the same length")
    elif len(set(fusion.features)) != len(fusion.features):  # two weights on one score: which one was meant?
        problems.append("a feature is listed twice")
    if any("." not in feature for feature in fusion.features):
        problems.append("each feature is DETECTOR.CLASS")
    # Bounded as a probe's weights are: finite weights of 1e308 made one photo's sum +inf - inf = NaN, and a NaN
    # fused score is below every threshold, so the photo was kept
    if not all(math.isfinite(x) and abs(x) <= MAX_WEIGHT for x in (*fusion.weights, fusion.bias)):
        problems.append(f"weights and bias must be finite numbers within +-{MAX_WEIGHT:g}")
    if not 0.0 <= fusion.review_from <= fusion.reject_at <= 1.0:
        problems.append("0 <= review_from <= reject_at <= 1 must hold")
    # A floor on a feature the model does not read would need a detector the rule does not require (rule_for).
    stray = sorted(feature for feature, _ in fusion.floors if feature not in fusion.features)
    if stray:
        problems.append(f"floors on {', '.join(stray)}, which the model does not read")
    if not all(0.0 < floor <= 1.0 for _, floor in fusion.floors):
        problems.append("each floor is a score in (0, 1]")
    if problems:
        raise RegistryError(f"{where}: " + "; ".join(problems))
    return fusion


def parse_fusion(data: bytes, where: str) -> Fusion:
    text = json_text(data, where)
    try:
        raw = json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands of levels deep
        raise RegistryError(f"{where}: not a fusion model: {type(err).__name__}: {err}"[:300]) from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: not a fusion model: a JSON object is expected")
    return _model(raw, hashlib.sha256(data).hexdigest(), where)


def read_fusion(path: str, sha256: str = "") -> Fusion:
    """The fusion model at `path`, refused when `sha256` is given and differs (a changed model file
    changes which photos are kept: it must be a recorded, deliberate change)."""
    data = read_json_bytes(path, "fusion model")
    fusion = replace(parse_fusion(data, path), file=path.rstrip("/").rsplit("/", 1)[-1])
    if sha256 and fusion.sha256 != sha256.lower():
        raise RegistryError(f"fusion model {path} has sha256 {fusion.sha256}, the registry says {sha256}")
    return fusion


def heldout_figures(fusion: Fusion) -> list[dict[str, Any]] | None:
    """Every held-out measurement of exactly this model (models/fusion*_heldout.json: one file per
    shipped model, the default's `fusion_heldout.json`, written from `evaluate --photos --split=...`),
    oldest first, each with its split, date, size, recall and keep-rate (and how the scored images were
    stored, where a record says: a later rule moves some scores; and the registry file a candidate was measured
    with, where it was one of the user's); None when this model was not measured."""
    for path in sorted(BUILTIN_REGISTRY.parent.glob("fusion*_heldout.json")):
        figures = json.loads(path.read_text())
        if figures.get("fusion_sha256") == fusion.sha256:
            return [{key: entry[key] for key in ("split", "date", "images", "recall", "keep_rate", "stored_by",
                                                          "model_registry")
                     if key in entry}
                    for entry in figures.get("evaluations", [])] or None
    return None


def figures_that_apply(fusion: Fusion, specs: Sequence[DetectorSpec]) -> list[dict[str, Any]] | None:
    """`heldout_figures` that describe the decision these detectors make with this model: a figure measured
    with a registry of one's own (a candidate's context classes) applies only where every context class the
    model reads is the same column (or the same probe file) of the same detector here as in that registry
    (models/, its sha256 as recorded); pointed at other columns, the same model file makes another decision."""
    figures = heldout_figures(fusion)
    if not figures:
        return figures
    ours = {spec.name: spec.context_sources for spec in specs}

    def applies(figure: dict[str, Any]) -> bool:
        note = figure.get("model_registry")
        if note is None:
            return True  # the built-in entries, which declare no context classes: the model reads none
        path = BUILTIN_REGISTRY.parent / str(note.get("file", ""))
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != note.get("sha256"):
            return False
        theirs = {name: spec.context_sources for name, spec in read_registry(str(path)).items()}
        for feature in fusion.features:
            detector, cls = feature.split(".", 1)
            if cls in theirs.get(detector, {}) and ours.get(detector, {}).get(cls) != theirs[detector][cls]:
                return False
        return True

    return [figure for figure in figures if applies(figure)] or None


def builtin_fusion() -> Fusion | None:
    """The fusion model `models/registry.json` names ("fusion": {"file", "sha256"}), if it names one."""
    entry = fusion_entry(str(BUILTIN_REGISTRY))
    if not entry:
        return None
    return read_fusion(resolve_file(entry["file"], str(BUILTIN_REGISTRY)), entry["sha256"])


def registry_fusion(registry: str = "") -> Fusion | None:
    """The default fusion model: the one `registry` (--model_registry) names, where its "fusion" entry names one, else
    the built-in registry's. The entry's file is relative to the registry file, absolute or gs://, and its sha256 is
    checked as the built-in one's is (a user who pointed it at their fitted model got the shipped one without a word:
    it was never read). An entry equal to the built-in one (its file and sha256 as written: a copy of
    models/registry.json, wherever it lies) names the shipped model, read from models/ as before."""
    entry = fusion_entry(registry) if registry else None
    builtin = fusion_entry(str(BUILTIN_REGISTRY))
    if entry is None or (builtin is not None and (entry["file"], entry["sha256"].lower())
                         == (builtin["file"], builtin["sha256"].lower())):
        return builtin_fusion()
    try:
        return read_fusion(resolve_file(entry["file"], registry), entry["sha256"])
    except RegistryError as err:  # named as the registry's: the file was named there, not on the command line
        # A copy of an older models/registry.json names the fusion model of its day, read as the shipped one until
        # the entry was honoured: the way back is said.
        raise RegistryError(f"{registry}: its fusion entry: {err} (give --fusion=FILE, or remove the entry for the "
                            "shipped model)") from None


def choose_fusion(choice: str, specs: list[DetectorSpec], registry: str = "") -> Fusion | None:
    """--fusion: 'none'; 'default' = the registry's model (`registry_fusion`: --model_registry's own, else the
    built-in one) when every detector it reads is selected (with fewer detectors the per-detector thresholds decide,
    as before fusion existed); or a path."""
    if choice == "none" or not specs:
        return None
    if choice in ("", "default"):
        fusion = registry_fusion(registry)
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
