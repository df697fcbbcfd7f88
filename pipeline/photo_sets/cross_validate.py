"""Compares fusion settings on spent splits by leaving one split out at a time: for each setting (a
feature set and `fit_fusion`'s options) and each split S, the model is fitted exactly as `fit_fusion`
fits it on the other splits and decides S's photographs by its `review_from` (held or rejected both
take a photo out); the counts are pooled over the splits. It answers "would this setting have done
better on photographs it was not fitted on?" without spending a fresh held-out split, which stays for
measuring the one model finally chosen.

    pass-pipeline evaluate --photos DIR --split S --fusion=none --json S.json \\
        --detectors=centerface,ssdlite_person,open_nsfw,nanodet_person,mediapipe_palm,mediapipe_pose
    python -m pipeline.photo_sets.cross_validate tuning.json heldout.json ... \\
        --splits=tuning,heldout,... --max_lost=0.15,0.2,0.25 \\
        --features="centerface.face,ssdlite_person.person,open_nsfw.nsfw,nanodet_person.person" \\
        --features="centerface.face,ssdlite_person.person,open_nsfw.nsfw,nanodet_person.person,mediapipe_palm.hand"

`--floor=centerface.face=0.8` fits every setting with that floor (fit_fusion --floor).

`--model=logistic,monotone_trees` also compares gradient-boosted trees constrained to be monotone in
every score (scikit-learn, the `eval` extra; `fit_fusion --model=monotone_trees` writes them) with the
logistic every shipped model is.

Prints one line per setting: pooled recall (images with a human held or rejected) and keep-rate
(no_person images kept), then each left-out split's counts. Like `fit_fusion`, every split must be
named in `--splits` (each one named is spent) and at least two are needed.
"""

from __future__ import annotations

if __name__ == "__main__":  # its stops handled from before its imports on (io/starting.py)
    from pipeline.io.starting import script

    raise SystemExit(script("cross_validate", "pipeline.photo_sets.cross_validate"))

import argparse
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.io.stopping import stops_saying
from pipeline.photo_sets.fetch import HUMAN_LABELS, Row
from pipeline.photo_sets.fit_fusion import (
    DEFAULT_FEATURES,
    KINDS,
    as_fusion,
    fit_kind,
    floor_problem,
    floors_within,
    labelled_scores,
    parse_floor,
)
from pipeline.photo_sets.scores_file import ScoresFileError, read_scores
from pipeline.printable import log_printably, printable
from pipeline.usage import OneLineParser, split_list, usage_said


@dataclass(frozen=True)
class Counts:
    """One left-out split's decisions: images with a human caught of all of them, clean images kept of all."""

    caught: int
    humans: int
    kept: int
    clean: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.caught + other.caught, self.humans + other.humans, self.kept + other.kept,
                      self.clean + other.clean)


MODELS = tuple(KINDS)


@dataclass(frozen=True)
class Setting:
    """What a fit is given besides the photographs: the features and `fit_fusion`'s options (the same
    defaults as the shipped model's fit), and the kind of model `fit_fusion --model` fits: `logistic`
    (every shipped model) or `monotone_trees`."""

    features: tuple[str, ...]
    l2: float = 0.1
    margin: float = 0.5
    max_lost: float = 0.2
    max_clean_rejected: float = 0.05
    model: str = "logistic"
    min_recall: float = 0.0  # > 0: review_from by recall on the fitted photos instead of margin and max_lost
    signed: tuple[str, ...] = ()  # features whose weight may be negative (fit_fusion --signed)
    floors: tuple[tuple[str, float], ...] = ()  # fit_fusion --floor


# Takes a photo out (held or rejected) from its scores.
Decider = Callable[[dict[str, float]], bool]


def _fit(rows: list[Row], scores: list[dict[str, float]], setting: Setting) -> Decider:
    """The model `fit_fusion` writes for this setting (without the per-detector ablation refits, which a
    comparison never reads), read as the pipeline reads the file. Trees fit the photographs they are fitted
    on more closely than a line: at the same `--max_lost` they lose more clean photographs elsewhere, so
    compare the kinds along their curves, at equal recall or keep-rate."""
    y = np.array([1.0 if row.label in HUMAN_LABELS else 0.0 for row in rows])
    fusion = as_fusion(fit_kind(setting.model, scores, y, [row.label for row in rows], setting.features,
                                setting.l2, setting.margin, setting.max_lost, setting.max_clean_rejected,
                                setting.min_recall, [name for name in setting.signed if name in setting.features],
                                setting.floors))
    return lambda one: fusion.score(one) >= fusion.review_from


def leave_one_split_out(splits: dict[str, tuple[list[Row], list[dict[str, float]]]],
                        setting: Setting) -> dict[str, Counts]:
    """Per split: the counts of a model fitted on every other split, deciding this one's photographs."""
    if len(splits) < 2:
        raise ValueError("leaving one split out needs at least two splits")
    counts = {}
    for left_out, (test_rows, test_scores) in splits.items():
        rows = [row for split, (some, _) in splits.items() if split != left_out for row in some]
        scores = [one for split, (_, some) in splits.items() if split != left_out for one in some]
        counts[left_out] = decided(test_rows, test_scores, _fit(rows, scores, setting))
    return counts


def decided(rows: Sequence[Row], scores: Sequence[dict[str, float]], takes_out: Decider) -> Counts:
    """The counts of one split's photographs decided by `takes_out`."""
    caught = kept = humans = clean = 0
    for row, one in zip(rows, scores, strict=True):
        out = takes_out(one)
        if row.label in HUMAN_LABELS:
            humans += 1
            caught += out
        elif row.label == "no_person":  # depictions count neither way (the policy allows both)
            clean += 1
            kept += not out
    return Counts(caught, humans, kept, clean)


def _line(name: str, counts: dict[str, Counts]) -> str:
    """A setting's line, escaped (printable): its name holds the features, signed ones and floors as typed (and as the
    scores files name them), its counts the scores files' split names; as they came, their escapes drove the terminal
    and a line break printed a forged setting's line of its own."""
    total = sum(counts.values(), Counts(0, 0, 0, 0))
    pooled = (f"recall {total.caught}/{total.humans} = {total.caught / max(total.humans, 1):.3f}, "
              f"keep-rate {total.kept}/{total.clean} = {total.kept / max(total.clean, 1):.3f}")
    each = ", ".join(f"{split} {c.caught}/{c.humans} {c.kept}/{c.clean}" for split, c in counts.items())
    return printable(f"{name}: {pooled}  ({each})")


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Stopped (Ctrl-C, SIGTERM), it says in one line how many settings it compared (their lines printed)
    and that it wrote nothing (`script_entry`): a traceback, or -15 and no word."""
    log_printably()  # a library's record one escaped line, as in pass-pipeline's log (printable.py)
    compared: list[str] = []
    with stops_saying(lambda: f"{len(compared)} setting(s) compared (each line printed), the others not; nothing "
                      "was written"), usage_said("cross_validate"):
        return _main(argv, compared)


def _main(argv: Sequence[str] | None, compared: list[str]) -> int:
    parser = OneLineParser(prog="python -m pipeline.photo_sets.cross_validate", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", nargs="+", help="evaluate --json output, one file per split")
    parser.add_argument("--splits", required=True, help="the splits of those files, comma-separated (all spent)")
    parser.add_argument("--features", action="append", default=[],
                        help="DETECTOR.CLASS,... (repeat for each feature set; default: the default model's)")
    parser.add_argument("--max_lost", default=None,
                        help="comma-separated values to compare (default: 0.2, or none when --min_recall is given)")
    parser.add_argument("--margin", default="0.5", help="comma-separated values to compare (with --max_lost)")
    parser.add_argument("--l2", default="0.1", help="comma-separated values to compare")
    parser.add_argument("--max_clean_rejected", type=float, default=0.05)
    parser.add_argument("--min_recall", default="",
                        help="comma-separated values in (0, 1] to compare, each a review threshold chosen to catch "
                        "at least this fraction of the fitted images with a human instead of by --max_lost and "
                        "--margin (give --max_lost too to compare both kinds)")
    parser.add_argument("--signed", default="", help="features whose weight may be negative (fit_fusion --signed)")
    parser.add_argument("--floor", action="append", default=[], type=parse_floor, metavar="FEATURE=SCORE",
                        help="fit_fusion --floor for every setting (repeatable; a feature set without the feature "
                        "is fitted without that floor)")
    parser.add_argument("--model", default="logistic",
                        help=f"comma-separated values to compare, of {', '.join(MODELS)} (monotone_trees "
                             "needs scikit-learn)")
    args = parser.parse_args(argv)
    try:
        recalls = [float(v) for v in split_list(args.min_recall)]
    except ValueError:
        parser.error(f"--min_recall: {args.min_recall!r} is not a list of numbers")
    if any(not 0.0 < r <= 1.0 for r in recalls):
        parser.error("--min_recall values must be within (0, 1]")
    losses = split_list(args.max_lost if args.max_lost is not None else ("" if recalls else "0.2"))
    models = split_list(args.model)
    if not models or any(model not in MODELS for model in models):
        parser.error(f"--model: {args.model!r}, choose from {', '.join(MODELS)}")
    named = split_list(args.splits)
    try:
        read = [read_scores(path) for path in args.scores]
    except ScoresFileError as err:
        parser.error(str(err))
    results = [result for _, result in read]
    seen = [result["split"] for result in results]  # a str in each: read_scores checked it
    if len(results) < 2 or sorted(seen) != sorted(named) or len(set(seen)) != len(seen):
        parser.error(f"one scores file per split named in --splits (at least two); got {seen} for {named}")
    feature_sets = [tuple(split_list(text)) for text in args.features] or [DEFAULT_FEATURES]
    signed = tuple(split_list(args.signed))
    unknown = sorted(set(signed) - {feature for features in feature_sets for feature in features})
    if unknown:  # a typo would otherwise compare an unsigned fit under the signed one's name
        parser.error(f"--signed names {', '.join(unknown)}, in no --features set")
    every = sorted({feature for features in feature_sets for feature in features})
    problem = floor_problem(args.floor, every)
    if problem:
        parser.error(problem.replace("not among --features", "in no --features set"))
    splits = {result["split"]: labelled_scores(result, every) for result in results}
    for path, (data, _) in zip(args.scores, read, strict=True):  # the bytes compared, not the file read again
        # escaped, as a refusal names it: as typed, a line break in the name printed a line read as a setting's
        print(f"# {printable(path)}: sha256 {hashlib.sha256(data).hexdigest()}")
    for model, features in itertools.product(models, feature_sets):
        in_set = [name for name in signed if name in features]
        floors = floors_within(args.floor, features)
        marked = "+".join(features) + (f" signed={','.join(in_set)}" if in_set else "") + "".join(
            f" floor {feature}={floor}" for feature, floor in floors)
        # l2 is the logistic's penalty: the trees have none to vary
        penalties = [float(v) for v in split_list(args.l2)] if model == "logistic" else [0.1]
        for min_recall, l2 in itertools.product(recalls, penalties):
            setting = Setting(tuple(features), l2=l2, max_clean_rejected=args.max_clean_rejected, model=model,
                              min_recall=min_recall, signed=signed, floors=floors)
            name = f"{marked} min_recall={min_recall}" + (f" l2={l2}" if model == "logistic" else
                                                                       f" {model}")
            print(_line(name, leave_one_split_out(splits, setting)))
            compared.append(name)
        for max_lost in (float(v) for v in losses):
            for margin in (float(v) for v in split_list(args.margin)):
                for l2 in penalties:
                    setting = Setting(tuple(features), l2, margin, max_lost, args.max_clean_rejected, model,
                                      signed=signed, floors=floors)
                    name = f"{marked} max_lost={max_lost} margin={margin}" + (
                        f" l2={l2}" if model == "logistic" else f" {model}")
                    print(_line(name, leave_one_split_out(splits, setting)))
                    compared.append(name)
    return 0

