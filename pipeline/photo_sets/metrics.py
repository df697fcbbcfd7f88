"""Recall and keep-rate on the labelled package photographs, with 95% Wilson score intervals, per
label, with depictions apart, and an ablation table (the combined decision with each detector
removed: without its threshold, and with the fusion model refitted on the tuning images without it).

Decision per image, exactly as the detect stage makes it for a run (one rule,
`pipeline/detectors/decision.py`: the fusion model's score, or per-detector thresholds with
--fusion=none): *rejected*, *held* for review, or *kept*. A held image is out of the dataset
until a reviewer accepts it, so:

- recall = images with a human (labels person, body_part, tiny_person) that are rejected or
  held, over all such images; `recall_rejected` counts outright rejections only;
- keep-rate = images labelled no_person that are kept (rejected and held both count as lost),
  over all no_person images.

Depiction policy. PASS promises no *photographs of people*: what must go is any image in which a
real person (or part of one, however small) was photographed. Paintings, drawings, statues,
dolls, mannequins and cartoon or CGI figures are objects that show a person's shape, not a
person; PASS kept statues and artworks, and so does this pipeline: removing them is allowed but
not required. They are labelled `depiction` (or no_person with a hard_negative_kind such as
statue, doll or mannequin, which count in the keep-rate) and `depiction` is reported apart: how
many were removed, never counted as a miss or a false rejection. The one case we would treat
as a person is a photorealistic render or a photograph of a photograph of a real person (a
poster, a screen) that a viewer cannot tell from a photograph; the labeller put such images
under `person`, so they are in the recall.

Intervals are Wilson score intervals (Wilson 1927): unlike the normal approximation they stay
inside [0, 1] and are not degenerate at 0% or 100%, which is where recall lives. A Wilson interval
takes the photographs for independent draws; they are not: a package's photographs share a
photographer, a subject and a style (one package gave 292 of the tuning split's), so what a detector
misses in one it tends to miss in its others. Beside it each combined rate gets an interval by package
(`ci95_packages`): a percentile bootstrap that draws whole packages, as the splits were drawn
(`package_interval`), widened where needed to hold the Wilson interval (a bootstrap says nothing at 0%
or 100%, where every draw repeats the rate), so it is never the narrower of the two.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from pipeline.detectors.decision import HELD, KEPT, REJECTED, rule_for
from pipeline.detectors.fusion import Fusion, model_summary
from pipeline.detectors.registry import DetectorSpec
from pipeline.photo_sets.fetch import HUMAN_LABELS, Row
from pipeline.stages.image import ImageConfig

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
__all__ = ["HELD", "KEPT", "REJECTED", "decide", "evaluate_rows", "package_interval", "rate", "wilson"]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `n`; (0, 1) when n is 0 (nothing known)."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in [0, {n}]")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Exact at the ends: rounding must not put 0 or 1 outside the interval that contains it.
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == n else min(1.0, centre + half))


# The package bootstrap's draws and seed: fixed, so that one set of decisions always gives one interval, in whatever
# order its photographs come (a draw picks packages by their place in the sorted order of their names). With 10,000
# draws the interval's ends move by well under a percentage point from one seed to another.
BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP_SEED = 20261205


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Area under the ROC curve of scores of photographs with (`positive`) and without (`negative`) what is sought:
    the share of (positive, negative) pairs the positive one scores above, ties counting half; nan where either side
    has none. The measurement scripts' (docs/measurements/), which each kept a copy."""
    if not positive or not negative:
        return math.nan
    ordered = np.sort(np.asarray(negative, dtype=np.float64))
    below = np.searchsorted(ordered, positive, "left")
    tied = np.searchsorted(ordered, positive, "right") - below
    return float((below + 0.5 * tied).sum() / (len(positive) * len(negative)))


def keeping(clean: Sequence[float], share: float) -> float:
    """The lowest threshold (a score above it is flagged) that keeps at least `share` of the clean photographs'
    scores, `clean` sorted; none (inf) where there are none. The measurement scripts' (docs/measurements/), which
    each kept a copy (one without the guard: an IndexError for a split without clean photographs). `share` is within
    (0, 1]: 0 read the largest score (clean[-1]), one over 1 an index past the end."""
    if not 0 < share <= 1:
        raise ValueError(f"keeping: share {share} is not within (0, 1]")
    return clean[math.ceil(share * len(clean)) - 1] if clean else math.inf


def package_draws(packages: int, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """`draws` resamples of `packages` packages, each `packages` indices drawn with replacement (one row a draw)."""
    return np.random.default_rng(seed).integers(0, packages, size=(draws, packages))


def package_interval(hits: Sequence[tuple[str, bool]], draws: int = BOOTSTRAP_DRAWS,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the rate of True among `hits` ((package, hit) per photograph) when
    packages, not photographs, are drawn: each draw takes as many packages as there are, with replacement, each with
    all its photographs, and its rate is their hits over their photographs; the packages are numbered in the order of
    their names, so the photographs' order changes nothing. (0, 1) with fewer than two packages: one package tells
    nothing of how packages differ."""
    by_package: dict[str, list[int]] = {}
    for package, hit in hits:
        counts = by_package.setdefault(package, [0, 0])
        counts[0] += bool(hit)
        counts[1] += 1
    if len(by_package) < 2:
        return 0.0, 1.0
    # by name: in the order first met, the same splits pooled in another order drew other packages with one seed
    successes, sizes = np.array([by_package[name] for name in sorted(by_package)], dtype=np.int64).T
    chosen = package_draws(len(by_package), draws, seed)
    rates = successes[chosen].sum(axis=1) / sizes[chosen].sum(axis=1)
    low, high = np.quantile(rates, [0.025, 0.975])
    return float(low), float(high)


def rate(successes: int, n: int) -> dict:
    low, high = wilson(successes, n)
    return {"successes": successes, "n": n, "rate": round(successes / n, 4) if n else None,
            "ci95": [round(low, 4), round(high, 4)]}


def decide(specs: Sequence[DetectorSpec], scores: dict[str, float], fusion: Fusion | None = None) -> str:
    """rejected, held or kept: the detect stage's own rule (pipeline/detectors/decision.py)."""
    return rule_for(specs, fusion).decide(scores).decision


def without(fusion: Fusion | None, detector: str) -> Fusion | None:
    """The decision without one detector: with a fusion model, the model refitted without it on the
    tuning images (stored in the model file; None, i.e. per-detector thresholds, if the file has none)."""
    if fusion is None or detector not in fusion.detectors:
        return fusion
    return fusion.without(detector)


def rates(rows: Sequence[Row], decisions: Sequence[str]) -> dict:
    humans = [(row.package, d) for row, d in zip(rows, decisions, strict=True) if row.has_human]
    clean = [(row.package, d) for row, d in zip(rows, decisions, strict=True) if row.label == "no_person"]
    return {"recall": by_package(rate(sum(d != KEPT for _, d in humans), len(humans)),
                                 [(package, d != KEPT) for package, d in humans]),
            "recall_rejected": rate(sum(d == REJECTED for _, d in humans), len(humans)),
            "keep_rate": by_package(rate(sum(d == KEPT for _, d in clean), len(clean)),
                                    [(package, d == KEPT) for package, d in clean])}


def by_package(figure: dict, hits: Sequence[tuple[str, bool]]) -> dict:
    """`figure` (a `rate`) with its interval by package (`ci95_packages`) and how many packages it is over. The
    interval is the package bootstrap's widened to hold Wilson's: at 0% or 100% every draw repeats the rate, and the
    bootstrap alone said "100% [100, 100]" of 54 photographs caught; where packages differ, it is the wider."""
    boot_low, boot_high = package_interval(hits)
    low, high = wilson(figure["successes"], figure["n"])
    return {**figure, "packages": len({package for package, _ in hits}),
            "ci95_packages": [round(min(low, boot_low), 4), round(max(high, boot_high), 4)]}


def _name(row: Row) -> str:
    return f"{row.package}:{row.member_path}"


def evaluate_rows(rows: Sequence[Row], scores: Sequence[dict[str, float]], specs: Sequence[DetectorSpec],
                  fusion: Fusion | None = None) -> dict:
    """Everything `pass-pipeline evaluate --photos` reports, as one JSON-able dict."""
    decisions = [decide(specs, s, fusion) for s in scores]
    per_label: dict[str, Counter] = {}
    for row, decision in zip(rows, decisions, strict=True):
        per_label.setdefault(row.label, Counter())[decision] += 1
    hard_negatives: dict[str, Counter] = {}
    for row, decision in zip(rows, decisions, strict=True):
        if row.label == "no_person" and row.hard_negative_kind:
            hard_negatives.setdefault(row.hard_negative_kind, Counter())[decision] += 1
    depictions = [d for row, d in zip(rows, decisions, strict=True) if row.label == "depiction"]

    def names(keep: Callable[[Row, str], bool]) -> list[str]:
        return sorted(_name(row) for row, d in zip(rows, decisions, strict=True) if keep(row, d))

    return {
        "images": len(rows),
        "labels": dict(Counter(row.label for row in rows)),
        "human_labels": sorted(HUMAN_LABELS),
        "detectors": [spec.name for spec in specs],
        "thresholds": {spec.name: spec.thresholds for spec in specs},
        "review_band": {spec.name: spec.review_band for spec in specs},
        "fusion": None if fusion is None else {
            "sha256": fusion.sha256, "features": list(fusion.features), **model_summary(fusion),
            "reject_at": fusion.reject_at, "review_from": fusion.review_from},
        "combined": rates(rows, decisions),
        "per_detector": {spec.name: rates(rows, [decide([spec], s) for s in scores]) for spec in specs},
        "ablation": {f"without {spec.name}": rates(rows, [decide([o for o in specs if o is not spec], s,
                                                                 without(fusion, spec.name)) for s in scores])
                     for spec in specs},
        "per_label": {label: dict(counts) for label, counts in sorted(per_label.items())},
        # Recall of each human label apart: the pooled figure can hide that tiny people, a few of a split,
        # are the ones missed.
        "recall_per_label": {label: rate(counts[REJECTED] + counts[HELD], sum(counts.values()))
                             for label, counts in sorted(per_label.items()) if label in HUMAN_LABELS},
        "hard_negatives": {kind: dict(counts) for kind, counts in sorted(hard_negatives.items())},
        "depictions": {"n": len(depictions), "removed": sum(d != KEPT for d in depictions),
                       "policy": "reported apart: removing them is allowed, not required"},
        # A default run refuses these at the image stage, before detection (they never enter the dataset); they
        # are scored as a run with --max_pixels raised would store them, and named here so that no figure hides it.
        "over_pixel_cap": names(lambda row, d: row.width * row.height > ImageConfig.max_pixels),
        "missed": names(lambda row, d: row.has_human and d == KEPT),
        "lost_clean": names(lambda row, d: row.label == "no_person" and d != KEPT),
        "decisions": {_name(row): d for row, d in zip(rows, decisions, strict=True)},
        "scores": {_name(row): s for row, s in zip(rows, scores, strict=True)},
    }


def _line(name: str, r: dict, packages: bool = False) -> str:
    def pct(x: dict) -> str:
        # From the counts, not from the stored values: those are rounded to four places already, and
        # rounding them again to one decimal of a percent can land on the wrong side (0.87449 -> 0.8745 -> 87.5%).
        successes, n = x["successes"], x["n"]
        low, high = wilson(successes, n)
        value = "n/a" if not n else f"{successes / n:.1%}"
        grouped = ""
        if packages and "ci95_packages" in x:
            by_low, by_high = x["ci95_packages"]
            grouped = f", by package [{by_low:.1%}, {by_high:.1%}] ({x['packages']} packages)"
        return f"{value} [{low:.1%}, {high:.1%}] ({successes}/{n}{grouped})"
    return f"  {name:28s} recall {pct(r['recall'])}  keep-rate {pct(r['keep_rate'])}"


def iter_summary(result: dict) -> Iterator[str]:
    labels = ", ".join(f"{k} {v}" for k, v in sorted(result["labels"].items()))
    yield (f"{result['images']} photographs ({labels}); 95% Wilson intervals (photographs taken as independent), "
           "and by package (a bootstrap drawing whole packages)")
    yield _line("combined", result["combined"], packages=True)
    rejected = result["combined"]["recall_rejected"]
    yield f"  {'':28s} (rejected outright: {rejected['successes']}/{rejected['n']}; the rest held for review)"
    for name, r in result["per_detector"].items():
        yield _line(f"{name} alone", r)
    yield "ablation (combined decision without one detector):"
    for name, r in result["ablation"].items():
        yield _line(name, r)
    if result.get("recall_per_label"):
        yield "recall per human label:"
    for label, figure in result.get("recall_per_label", {}).items():
        low, high = wilson(figure["successes"], figure["n"])
        yield (f"  {label:18s} {figure['successes'] / figure['n']:.1%} [{low:.1%}, {high:.1%}] "
               f"({figure['successes']}/{figure['n']})")
    yield "per label (rejected / held / kept):"
    for label, counts in result["per_label"].items():
        yield f"  {label:18s} {counts.get(REJECTED, 0):4d} / {counts.get(HELD, 0):4d} / {counts.get(KEPT, 0):4d}"
    for kind, counts in result["hard_negatives"].items():
        name = f"no_person/{kind}"
        yield f"  {name:18s} {counts.get(REJECTED, 0):4d} / {counts.get(HELD, 0):4d} / {counts.get(KEPT, 0):4d}"
    d = result["depictions"]
    yield f"depictions (apart, not scored): {d['removed']}/{d['n']} removed"
    if result.get("over_pixel_cap"):
        yield ("over the default --max_pixels (a default run refuses them before detection; scored with the cap "
               "raised): " + ", ".join(result["over_pixel_cap"]))
    if result["missed"]:
        yield "missed: " + ", ".join(result["missed"])
