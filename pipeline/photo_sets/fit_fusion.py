"""Fits the fusion model (`pipeline/detectors/fusion.py`) on the *tuning* photographs, and on
held-out splits only when they are named (`--splits`): a split the fit sees is spent, and the model
is then measured on a later one (today's default: tuning + heldout to heldout7, measured on heldout8;
the one before it, fusion_v4.json: tuning + heldout to heldout4, measured on heldout5 to heldout8).

    pass-pipeline evaluate --photos DIR --split tuning --fusion=none --json tuning.json
    python -m pipeline.photo_sets.fit_fusion tuning.json models/fusion.json
    python -m pipeline.photo_sets.fit_fusion tuning.json heldout.json ... out.json --splits=tuning,heldout,...

Input: the JSON `evaluate` writes (its "scores": per labelled image, every detector's score).
Images with a human (person, body_part, tiny_person) are the positives, `no_person` images the
negatives; depictions take no part (the policy neither requires nor forbids removing them).

The model is an L2-regularised logistic regression on the logits of the detectors' scores, fitted
by Newton's method (a handful of features: no library needed), with non-negative weights, and
weighted so that no_person images weigh half of the total and each human label (person,
body_part, tiny_person) a sixth: the tuning set's mix (54 tiny people, 24 body parts) does not set
what the model cares about.
Thresholds are then chosen on the same tuning scores, recall first:

- `review_from`: a threshold that still catches every tuning image with a human, lowered by a
  margin (`--margin`, in logit units) for photos a little weaker than any seen in tuning, and at
  least to halfway between the weakest of them and the next lower score; when that would lose more
  than `--max_lost` of the clean images, one that loses exactly that many instead (the fit reports
  the tuning recall it then reaches); with `--min_recall=R` instead, the highest threshold that
  still catches at least a fraction R of the tuning images with a human (the margin and `--max_lost`
  are then not used), so that a candidate can be placed near the operating point of the model it
  would replace (choose R by cross-validation: a fitted recall is not a held-out one);
- `reject_at`: a threshold above which at most `--max_clean_rejected` of the clean tuning images
  lie, dividing the tuning images as the lowest such threshold does (rejecting outright what a
  reviewer would nearly always reject, holding the rest).

Fused scores are computed by the pipeline's own `Fusion.score`, and a threshold chosen between two
tuning images sits halfway between their fused scores: the models committed before 2026-11-30 put
it one float step above a photo, so a change of a score in its last bits (CenterFace's constant
weights moved scores by up to 6e-6) flipped it (held -> rejected, three photos of fitted-on splits).

Everything needed to reproduce the fit (the score file's sha256, the options, tuning figures) is
written into the model file.

`--floor=FEATURE=SCORE` (repeatable) adds a floor (`pipeline/detectors/fusion.py`): a photo whose FEATURE
score is at or above SCORE is rejected whatever the fused score says. The floored photographs count in the
thresholds' choice at the top of the fused scale (a floored clean photo uses up `--max_lost` and
`--max_clean_rejected` like any other; a fit whose floors alone take more clean photos than `--max_lost` allows is
refused, since the weights would then decide nothing), and the ablation refits keep the floors on the features they
still read. A feature floored twice, or one not among `--features`, is refused.

`--model=monotone_trees` fits gradient-boosted trees over the same logits instead (scikit-learn, the
`eval` extra; depth 3, 150 rounds, every feature constrained to raise the score, the same label
weights), with the same thresholds chosen on the scores the pipeline's own reading of the trees gives;
the file holds each tree's nodes (`pipeline/detectors/fusion.py`). No shipped default is trees.
"""

from __future__ import annotations

if __name__ == "__main__":  # its stops handled from before its imports on (io/starting.py)
    from pipeline.io.starting import script

    raise SystemExit(script("fit_fusion", "pipeline.photo_sets.fit_fusion"))

import argparse
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.detectors.fusion import Fusion, logit, parse_fusion, sigmoid
from pipeline.io.stopping import stops_saying
from pipeline.io.whole_file import TargetNotAFile, check_output, write_whole
from pipeline.photo_sets.fetch import HUMAN_LABELS, Row, fitted_rows
from pipeline.photo_sets.scores_file import ScoresFileError, read_scores
from pipeline.printable import log_printably, printable, said
from pipeline.usage import OneLineParser, split_list, usage_said

DEFAULT_FEATURES = ("centerface.face", "nanodet_person.person", "oidv4_person.person")  # models/fusion.json's


def design(scores: Sequence[dict[str, float]], features: Sequence[str]) -> np.ndarray:
    return np.array([[logit(s.get(f, 0.0)) for f in features] for s in scores], dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, sample_weight: np.ndarray | None = None,
                 iterations: int = 100) -> tuple[np.ndarray, float]:
    """Weights and bias minimising the weighted log loss + l2 * |weights|^2 (bias not penalised),
    by Newton's method; without `sample_weight` each class weighs half of the total."""
    n, k = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    if sample_weight is None:
        positives = max(1, int(y.sum()))
        sample_weight = np.where(y == 1, n / (2 * positives), n / (2 * max(1, n - positives)))
    penalty = np.full(k + 1, 2 * l2)
    penalty[-1] = 0.0
    beta = np.zeros(k + 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a @ beta)))
        gradient = a.T @ (sample_weight * (p - y)) + penalty * beta
        hessian = (a * (sample_weight * p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def fit_nonnegative(x: np.ndarray, y: np.ndarray, l2: float, sample_weight: np.ndarray,
                    signed: Sequence[int] = ()) -> tuple[np.ndarray, float]:
    """`fit_logistic` with every weight >= 0: a detector seeing a person is never evidence against
    one (a negative weight, fitted to the quirks of a few hundred images, would let a strong nsfw or
    hand score lower the fused score). Features whose weight comes out negative are dropped (weight
    0) and the rest refitted, until none is negative. The columns in `signed` (`--signed`: context
    classes named on purpose, such as an animal a COCO detector sees) keep a weight of either sign."""
    active = list(range(x.shape[1]))
    while True:
        weights, bias = fit_logistic(x[:, active], y, l2, sample_weight)
        if all(weight >= 0 or index in signed for index, weight in zip(active, weights, strict=True)):
            full = np.zeros(x.shape[1])
            full[active] = weights
            return full, bias
        active = [index for index, weight in zip(active, weights, strict=True) if weight >= 0 or index in signed]


def label_weights(labels: Sequence[str]) -> np.ndarray:
    """Each human label (person, body_part, tiny_person) weighs a third of the positives' half and
    no_person the other half: a hand on its own matters as much as a crowd of tiny people, however
    many of each the tuning set happens to hold."""
    counts = {label: labels.count(label) for label in set(labels)}
    humans = [label for label in counts if label in HUMAN_LABELS]
    n = len(labels)
    return np.array([n / (2 * len(humans) * counts[label]) if label in HUMAN_LABELS else n / (2 * counts[label])
                     for label in labels])


def _between(score: float, others: np.ndarray) -> float:
    """A threshold above `score` that divides `others` as one just above it does: halfway to the next
    higher score (to 1.0 if there is none), so that no tuning photo sits within float rounding of it.
    A threshold one float step above a photo (as the fit once placed them) flips that photo when its
    score moves in the last bits: another onnxruntime build, graph optimisation or summation order.
    Never above 1.0, a model's limit: a photo fused at exactly 1.0 lies at or above any threshold."""
    higher = others[others > score]
    upper = float(higher.min()) if len(higher) else 1.0
    middle = score + (upper - score) / 2
    return min(1.0, middle if middle > score else float(np.nextafter(score, 2.0)))


def _below(score: float, others: np.ndarray) -> float:
    """Halfway between `score` and the next lower score of `others` (or 0.0 if there is none): a
    threshold that divides `others` as `score` itself does, with no photo within float rounding of it.
    Two scores one float step apart have no middle (the halfway sum rounds to the lower one, which would
    then be caught too): there `score` itself divides them."""
    lower = others[others < score]
    if not len(lower):
        return score / 2
    middle = float(lower.max()) + (score - float(lower.max())) / 2
    return middle if middle > lower.max() else score


def choose_thresholds(fused_humans: np.ndarray, fused_clean: np.ndarray, margin: float, max_lost: float,
                      max_clean_rejected: float, min_recall: float = 0.0) -> tuple[float, float]:
    """(review_from, reject_at) on the tuning scores (see the module's docstring); `min_recall` > 0
    chooses review_from by recall instead of by `margin` and `max_lost`. Not rounded: a rounded
    threshold could land above the weakest human it was chosen to catch."""
    everyone = np.concatenate([fused_humans, fused_clean])
    ranked = np.sort(fused_clean)[::-1]
    if min_recall > 0:
        review_from = _reaching(min_recall, fused_humans, everyone)
    else:
        weakest = float(fused_humans.min()) if len(fused_humans) else 1.0
        # No margin means none: sigmoid(logit(x)) is not x above 1 - 1e-4, where logit clips (a floored
        # photo is fused at 1.0), and the threshold would then catch clean photos just below the weakest human.
        lowered = sigmoid(logit(weakest) - margin) if margin > 0 else weakest
        review_from = min(_below(weakest, everyone), lowered)
        lost_allowed = math.floor(max_lost * len(ranked))
        if lost_allowed < len(ranked) and (ranked >= review_from).sum() > lost_allowed:
            # above the clean score ranked lost_allowed + 1: at most lost_allowed clean images reach it
            review_from = _between(float(ranked[lost_allowed]), everyone)
    rejected_allowed = math.floor(max_clean_rejected * len(ranked))
    reject_at = _between(float(ranked[rejected_allowed]), everyone) if rejected_allowed < len(ranked) else 0.0
    return review_from, max(reject_at, review_from)


def _reaching(min_recall: float, fused_humans: np.ndarray, everyone: np.ndarray) -> float:
    """The highest threshold at or above which at least `min_recall` of the humans lie: just below the
    human ranked k from the top, the fewest k with k / n >= min_recall (halfway to the next lower score
    of anyone, so that no image sits within rounding of it; photos tied with that human are caught too)."""
    if not len(fused_humans):
        return 1.0
    n = len(fused_humans)
    # The fewest humans whose share reaches R, counted as the recall is reported (k / n), with no product
    # to round: 0.14 * 50 is 7.000000000000001, and ceil() of it would ask for 8.
    needed = next((k for k in range(1, n + 1) if k / n >= min_recall), n)
    return _below(float(np.sort(fused_humans)[::-1][needed - 1]), everyone)


def fused_scores(scores: Sequence[dict[str, float]], features: Sequence[str], weights: np.ndarray,
                 bias: float, floors: Sequence[tuple[str, float]] = ()) -> np.ndarray:
    """Each image's fused score computed by the pipeline's own `Fusion.score`, bit for bit: thresholds
    chosen on numpy's sums (another summation order) could fall on the other side of a photo. A floored
    photo scores 1.0 here (the top of the scale: rejected by any `reject_at` the thresholds choose)."""
    model = Fusion(features=tuple(features), weights=tuple(float(w) for w in weights), bias=float(bias),
                   reject_at=1.0, review_from=1.0, floors=tuple(floors))
    return np.array([model.score(s) for s in scores], dtype=np.float64)


def floor_problem(floors: Sequence[tuple[str, float]], features: Sequence[str]) -> str:
    """What is wrong with --floor values for a fit over `features` ("" when nothing): a feature floored twice
    (which floor would the file hold?) or one the fit does not read (a typo would fit without it, silently)."""
    named = [feature for feature, _ in floors]
    twice = sorted({feature for feature in named if named.count(feature) > 1})
    if twice:
        return f"--floor names {', '.join(twice)} more than once"
    stray = sorted(set(named) - set(features))
    return f"--floor names {', '.join(stray)}, not among --features" if stray else ""


def floors_within(floors: Sequence[tuple[str, float]], features: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """The floors on features a model reads (an ablation refit without a detector drops its floors)."""
    return tuple(sorted((feature, floor) for feature, floor in floors if feature in features))


def _floors_entry(floors: Sequence[tuple[str, float]]) -> dict:
    return {"floors": dict(floors)} if floors else {}  # absent when none: the shipped files refit byte for byte


def fit_model(x: np.ndarray, y: np.ndarray, labels: list[str], features: Sequence[str], l2: float, margin: float,
              max_lost: float, max_clean_rejected: float, scores: Sequence[dict[str, float]],
              min_recall: float = 0.0, signed: Sequence[str] = (), floors: Sequence[tuple[str, float]] = ()) -> dict:
    """One fusion model: weights (rounded first, so the thresholds are chosen on the very scores the
    written model gives), thresholds, and its figures on the tuning images. `x` is `design(scores)`."""
    weights, bias = fit_nonnegative(x, y, l2, label_weights(labels),
                                    [index for index, name in enumerate(features) if name in signed])
    weights, bias = np.round(weights, 6), round(bias, 6)
    floors = floors_within(floors, features)
    fused = fused_scores(scores, features, weights, bias, floors)
    humans, clean = fused[y == 1], fused[y == 0]
    review_from, reject_at = choose_thresholds(humans, clean, margin, max_lost, max_clean_rejected, min_recall)
    return {"features": list(features), "weights": [float(w) for w in weights], "bias": bias,
            **_floors_entry(floors), **_thresholds_and_figures(humans, clean, review_from, reject_at)}


def _thresholds_and_figures(humans: np.ndarray, clean: np.ndarray, review_from: float, reject_at: float) -> dict:
    """A model file's thresholds and its figures on the photographs it was fitted on."""
    return {"review_from": review_from, "reject_at": reject_at,
            "tuning": {"recall": round(float((humans >= review_from).mean()), 4),
                       "recall_rejected": round(float((humans >= reject_at).mean()), 4),
                       "keep_rate": round(float((clean < review_from).mean()), 4)}}


# The trees' settings: shallow, slow, many, no early stopping (deterministic for a given input), every
# feature constrained to raise the score (monotone, as the file is checked to be when read).
TREE_SETTINGS = {"max_depth": 3, "max_iter": 150, "learning_rate": 0.05, "early_stopping": False, "random_state": 0}
KINDS = {"logistic": "logistic over logit(clip(score, 1e-4, 1 - 1e-4))",
         "monotone_trees": "monotone gradient-boosted trees over logit(clip(score, 1e-4, 1 - 1e-4))"}


def trees_of(x: np.ndarray, y: np.ndarray, labels: list[str]) -> tuple[float, list[list[list]]]:
    """Gradient-boosted trees (scikit-learn, the `eval` extra: imported only here) fitted on `x` with the
    logistic's label weights: (baseline log-odds, trees as lists of nodes), in the file's form."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(monotonic_cst=[1] * x.shape[1], **TREE_SETTINGS)
    model.fit(x, y, sample_weight=label_weights(labels))
    trees = []
    for (predictor,) in model._predictors:  # one tree per round for two classes
        # [feature, threshold, left, right, value] (fusion.py), feature -1 for a leaf
        trees.append([[-1 if node["is_leaf"] else int(node["feature_idx"]), float(node["num_threshold"]),
                       int(node["left"]), int(node["right"]), float(node["value"])] for node in predictor.nodes])
    return float(np.asarray(model._baseline_prediction).ravel()[0]), trees


def fit_trees_model(x: np.ndarray, y: np.ndarray, labels: list[str], features: Sequence[str], margin: float,
                    max_lost: float, max_clean_rejected: float, scores: Sequence[dict[str, float]],
                    min_recall: float = 0.0, floors: Sequence[tuple[str, float]] = ()) -> dict:
    """`fit_model` for trees: the same thresholds, chosen on the scores the pipeline's own reading of
    the written trees gives."""
    baseline, trees = trees_of(x, y, labels)
    floors = floors_within(floors, features)
    model = as_fusion({"features": list(features), "baseline": baseline, "trees": trees,
                       **_floors_entry(floors), "reject_at": 1.0, "review_from": 1.0})
    fused = np.array([model.score(s) for s in scores], dtype=np.float64)
    humans, clean = fused[y == 1], fused[y == 0]
    review_from, reject_at = choose_thresholds(humans, clean, margin, max_lost, max_clean_rejected, min_recall)
    return {"features": list(features), "baseline": baseline, "trees": trees, **_floors_entry(floors),
            **_thresholds_and_figures(humans, clean, review_from, reject_at)}


def fit_kind(kind: str, scores: Sequence[dict[str, float]], y: np.ndarray, labels: list[str],
             features: Sequence[str], l2: float, margin: float, max_lost: float, max_clean_rejected: float,
             min_recall: float = 0.0, signed: Sequence[str] = (), floors: Sequence[tuple[str, float]] = ()) -> dict:
    """One model of `kind` (a key of KINDS) over `features`, as the file holds it (without the ablation)."""
    x = design(scores, features)
    if kind == "monotone_trees":
        if signed:
            raise SystemExit("fit_fusion: --signed is for the logistic model (trees are monotone in every feature)")
        return fit_trees_model(x, y, labels, features, margin, max_lost, max_clean_rejected, scores, min_recall,
                               floors)
    return fit_model(x, y, labels, features, l2, margin, max_lost, max_clean_rejected, scores, min_recall, signed,
                     floors)


def as_fusion(model: dict) -> Fusion:
    """A fitted model (`fit_kind`'s) as the pipeline reads it from a file, with every check that implies."""
    return parse_fusion(json.dumps(model).encode(), "the fitted model")


def labelled_scores(result: dict, features: Sequence[str]) -> tuple[list[Row], list[dict[str, float]]]:
    """The rows of one `evaluate --json` result's split that a fit uses (images with a human and
    no_person images, in the CSV's order) and their scores; refused when a photo or a feature is missing."""
    named, split = result["scores"], result["split"]
    rows = fitted_rows(split)
    # Every labelled photo of the split, with every feature: a photo left out or a detector not
    # run would otherwise be fitted as absent (a score of 0), silently.
    missing = [key for key in (f"{row.package}:{row.member_path}" for row in rows) if key not in named]
    # The flags' values quoted here and in `fit` (a split, a feature) are escaped as argparse's are (`usage_said`):
    # as typed, their escapes reached the terminal and a line break printed a forged line of its own.
    split = printable(split)
    if missing:
        raise SystemExit(f"the {split} scores lack {len(missing)} labelled photo(s) of that split, "
                         f"e.g. {', '.join(missing[:3])}: score the whole split (evaluate --photos DIR "
                         f"--split {split} --json FILE)")
    split_scores = [named[f"{row.package}:{row.member_path}"] for row in rows]
    absent = sorted({feature for one in split_scores for feature in features if feature not in one})
    if absent:
        raise SystemExit(f"the {split} scores have no {printable(', '.join(absent))} for some photos: score "
                         f"them with the detectors --features names (evaluate --detectors)")
    return rows, split_scores


def fit(results: Sequence[dict], features: Sequence[str], l2: float, margin: float, max_lost: float,
        max_clean_rejected: float, splits: Sequence[str] = ("tuning",), kind: str = "logistic",
        min_recall: float = 0.0, signed: Sequence[str] = (), floors: Sequence[tuple[str, float]] = ()) -> dict:
    """The model over `features`, and, for the ablation table `evaluate` prints, one model per
    detector refitted the same way without that detector's scores (a detector earns its place when
    the decision without it, chosen on the same tuning images, does worse on the held-out ones).

    `results` are `evaluate --json` outputs, one per split, each of a split in `splits` (by default
    only `tuning`: a held-out split the fit sees is no longer held out, so fitting on one is an
    explicit choice, for a model that will be measured on a later split)."""
    seen = [result.get("split") for result in results]
    problem = floor_problem(floors, features)
    if problem:
        raise SystemExit(f"fit_fusion: {printable(problem)}")
    if set(signed) - set(features):
        raise SystemExit(f"fit_fusion: --signed names {printable(', '.join(sorted(set(signed) - set(features))))}, not "
                         "among --features")
    if not results or any(split not in splits for split in seen) or len(set(seen)) != len(seen):
        raise SystemExit(f"fit_fusion: the scores must be of the tuning split (evaluate --split tuning), or one "
                         f"file per split named with --splits; got {seen} for --splits={printable(','.join(splits))}")
    used, scores = [], []
    for result in results:
        rows, split_scores = labelled_scores(result, features)
        used += rows
        scores += split_scores
    y = np.array([1.0 if row.label in HUMAN_LABELS else 0.0 for row in used])
    labels = [row.label for row in used]
    floored_clean = sum(1 for one, label in zip(scores, y, strict=True)
                        if not label and any(one.get(feature, 0.0) >= floor for feature, floor in floors))
    if min_recall <= 0 and floored_clean > math.floor(max_lost * int((1 - y).sum())):
        # review_from would be pushed to 1.0: the floors alone would decide, the weights nothing
        raise SystemExit(f"fit_fusion: the floors alone take {floored_clean} of {int((1 - y).sum())} clean photos, "
                         f"more than --max_lost={max_lost} allows: raise the floor")

    def one(names: Sequence[str]) -> dict:
        return fit_kind(kind, scores, y, labels, names, l2, margin, max_lost, max_clean_rejected, min_recall, signed,
                        floors)

    model = one(features)
    ablation = {}
    for detector in sorted({feature.split(".", 1)[0] for feature in features}):
        rest = [feature for feature in features if feature.split(".", 1)[0] != detector]
        if rest:
            ablation[detector] = one(rest)
    options: dict[str, Any] = {"l2": l2} if kind == "logistic" else {"trees": TREE_SETTINGS}
    if signed:  # only then: the shipped files, fitted without it, still refit byte for byte
        options["signed"] = sorted(signed)
    if floors:  # likewise
        options["floors"] = dict(sorted(floors))
    fitted = " + ".join(map(str, seen))  # each a name in `splits`: checked above
    return {
        "kind": KINDS[kind],
        **model,
        "fitted_on": (f"{fitted} split{'s' if len(seen) > 1 else ''} of pipeline/photo_sets/labels.csv: "
                      f"{int(y.sum())} images with a human, {int((1 - y).sum())} no_person; scores sha256 "
                      + ", ".join(f"{result.get('_sha256', '')}" + (f" ({result['split']})" if len(seen) > 1 else "")
                                  for result in results)),
        # A model fitted by recall records that rule instead of the two it replaces; one fitted the usual
        # way keeps the options every shipped file holds (so they still refit byte for byte).
        "options": {**options, **({"min_recall": min_recall} if min_recall > 0 else
                                  {"margin": margin, "max_lost": max_lost}),
                    "max_clean_rejected": max_clean_rejected},
        "ablation": ablation,
    }


def parse_floor(text: str) -> tuple[str, float]:
    """--floor's FEATURE=SCORE, the score within (0, 1]."""
    feature, sep, value = text.partition("=")
    try:
        floor = float(value)
    except ValueError:
        floor = math.nan
    if not sep or "." not in feature or not 0.0 < floor <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DETECTOR.CLASS=SCORE with SCORE in (0, 1]")
    return feature.strip(), floor


def files_left(wanted: Sequence[str], written: Sequence[str]) -> str:
    """For a stopped command's line: the files it wrote (each whole) and those it did not write (as they were)."""
    left = [name for name in wanted if name not in written]
    # as typed, a name's escapes reached the terminal and its line break printed a forged line of its own
    parts = [f"{printable(', '.join(written))} written (whole)"] if written else []
    if left:
        parts.append(f"{printable(', '.join(left))} not written (as {'they were' if len(left) > 1 else 'it was'})")
    return "; ".join(parts) or "nothing was written"


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Stopped (Ctrl-C, SIGTERM), it says in one line whether the model file was written (whole) or left
    as it was (`script_entry`): it was written in place, and a stop during the write cut it. The file counts as
    written from its rename on: a stop right after it was said to have left the file as it was. A model file name
    that is no file to write (`check_output`: a folder, a named pipe, a link, a missing folder, a dataset's) is
    refused before the fit, exit 2 (a traceback after the whole fit); what becomes one meanwhile, in one line."""
    log_printably()  # a library's record one escaped line, as in pass-pipeline's log (printable.py)
    out: list[str] = []  # the model file, once the arguments are read
    written: list[str] = []
    with stops_saying(lambda: f"the fit did not finish; {files_left(out, written)}" if not written else
                      files_left(out, written)), usage_said("fit_fusion"):
        try:
            return _main(argv, out, written)
        except TargetNotAFile as err:  # the name as typed, escaped as the same refusal before the fit is (usage_said)
            raise SystemExit(f"fit_fusion: {said(err)}") from None


def _main(argv: Sequence[str] | None, out: list[str], written: list[str]) -> int:
    parser = OneLineParser(prog="python -m pipeline.photo_sets.fit_fusion", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", nargs="+", help="evaluate --split tuning --json output (one file per split)")
    parser.add_argument("out", help="where to write the fusion model (models/fusion.json)")
    parser.add_argument("--features", default=",".join(DEFAULT_FEATURES), help="DETECTOR.CLASS,...")
    parser.add_argument("--l2", type=float, default=0.1, help="ridge penalty on the weights")
    parser.add_argument("--margin", type=float, default=0.5, help="logit units below the weakest tuning human")
    parser.add_argument("--max_lost", type=float, default=0.2,
                        help="most clean images review may take (fusion_v2 to fusion_v4: 0.2; fusion.json: 0.175)")
    parser.add_argument("--max_clean_rejected", type=float, default=0.05,
                        help="most clean images rejected outright (every shipped model: 0.05)")
    parser.add_argument("--min_recall", type=float, default=0.0,
                        help="choose review_from as the highest threshold catching at least this fraction of the "
                        "images with a human it is fitted on, instead of by --margin and --max_lost (0: off)")
    parser.add_argument("--signed", default="",
                        help="features (of --features) whose weight may come out negative: context classes named on "
                        "purpose, e.g. nanodet_person.bird (default: none; every other weight is kept >= 0)")
    parser.add_argument("--model", default="logistic", choices=sorted(KINDS),
                        help="logistic (every shipped model) or monotone_trees (needs scikit-learn)")
    parser.add_argument("--floor", action="append", default=[], type=parse_floor, metavar="FEATURE=SCORE",
                        help="a feature score at or above which a photo is rejected on its own, e.g. "
                        "centerface.face=0.8 (repeatable; default: none)")
    parser.add_argument("--splits", default="tuning",
                        help="the splits the fit may use, comma-separated (default: tuning only; a held-out split "
                        "named here is used up: measure the model on a later one)")
    args = parser.parse_args(argv)
    out.append(args.out)
    if not 0.0 <= args.min_recall <= 1.0:
        parser.error("--min_recall must be within 0..1 (0: off)")
    try:  # before the fit: a folder or a missing one was a traceback after it, a link replaced (its model left stale)
        check_output("out", args.out)
    except TargetNotAFile as err:
        parser.error(str(err))
    results = []
    for path in args.scores:
        try:
            data, result = read_scores(path)
        except ScoresFileError as err:
            parser.error(str(err))
        result["_sha256"] = hashlib.sha256(data).hexdigest()
        results.append(result)
    model = fit(results, split_list(args.features), args.l2, args.margin, args.max_lost, args.max_clean_rejected,
                split_list(args.splits), args.model, args.min_recall, split_list(args.signed), args.floor)
    # A logistic file is a few lines a person reads; trees (150 per model and per ablation) are data: one line.
    text = json.dumps(model, indent=1) if args.model == "logistic" else json.dumps(model, separators=(",", ":"))
    write_whole(args.out, (text + "\n").encode(), written)  # noted in `written` from its rename on
    shown = ("features", "weights", "bias") if args.model == "logistic" else ("features", "baseline")
    print(json.dumps({k: model[k] for k in (*shown, "review_from", "reject_at", "tuning")}))
    return 0

