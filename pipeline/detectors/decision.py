"""The one rule that turns a photo's detector scores into kept, held for review or rejected.

The detect stage applies it to every photo of a run, `pass-pipeline evaluate` to the labelled
photographs, so what evaluation reports is what a run does:

1. nsfw: any nsfw class at or above its own threshold -> rejected `nsfw`;
2. human, fused: when a fusion model is in use, its fused score over the detectors it covers
   (`fusion.py`) -> rejected `human` at `reject_at`, held in [`review_from`, `reject_at`);
3. human, per detector: every human class the fusion does not cover (all of them without a fusion
   model) at or above its threshold -> rejected `human`; inside its band -> held;
4. nsfw classes inside their band -> held; otherwise kept.

Scores only ever rise as more views and detectors are seen (a photo's score is the best over its
views; a missing score counts as 0), and the fused score cannot fall when one of them rises while
every weight is non-negative. So once the scores seen so far reject a photo as human, more cannot
change that: `certainly_human` tells the Detect stage when it may skip a photo's remaining human
detectors and tiles (`handler.staged_scores`). A fusion floor reached (`fusion.py`) decides on its own, so
it does too, whatever the weights; a floor must be on a class a selected detector declares human, since it
rejects as `human`. nsfw detectors are never skipped, so rule 1, which
comes first, always sees every nsfw score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.detectors.fusion import Fusion
from pipeline.detectors.registry import DetectorSpec, RegistryError

REJECTED, HELD, KEPT = "rejected", "held", "kept"


class Verdict(NamedTuple):
    decision: str  # rejected | held | kept
    reason: str  # human | nsfw | needs_review | ""
    detail: str


@dataclass(frozen=True)
class DecisionRule:
    specs: tuple[DetectorSpec, ...]
    fusion: Fusion | None = None

    def _own(self, spec: DetectorSpec, cls: str) -> bool:
        """Whether this class is decided by its own threshold (not folded into the fused score)."""
        return self.fusion is None or cls in spec.nsfw_classes or spec.score_name(cls) not in self.fusion.features

    def _hits(self, scores: Mapping[str, float], kind: str, band: bool) -> list[str]:
        hits = []
        for spec in self.specs:
            for cls in getattr(spec, kind):
                if not self._own(spec, cls):
                    continue
                score, threshold = scores.get(spec.score_name(cls), 0.0), spec.thresholds[cls]
                low = spec.review_band.get(cls, threshold) if band else threshold
                if low <= score and (not band or score < threshold):
                    hits.append(f"{spec.score_name(cls)} {score:.3f} >= {low}")
        return hits

    def certainly_human(self, scores: Mapping[str, float]) -> bool:
        """Whether these (possibly partial) scores already reject the photo as human whatever the
        views and detectors not seen yet would add: a per-detector human threshold reached, or the
        fused score at `reject_at` from a monotone model (non-negative weights, or trees: a file given
        with --fusion may have a negative weight, and then only a complete set of scores decides)."""
        if self._hits(scores, "human_classes", band=False):
            return True
        fusion = self.fusion
        # A floor reached decides whatever comes later, monotone weights or not.
        return fusion is not None and (fusion.reaches_floor(scores)
                                       or (fusion.monotone and fusion.score(scores) >= fusion.reject_at))

    def decide(self, scores: Mapping[str, float]) -> Verdict:
        nsfw = self._hits(scores, "nsfw_classes", band=False)
        if nsfw:
            return Verdict(REJECTED, "nsfw", "; ".join(nsfw))
        fused = self.fusion.score(scores) if self.fusion else 0.0
        human = self._hits(scores, "human_classes", band=False)
        if self.fusion and fused >= self.fusion.reject_at:
            human.insert(0, f"{self.fusion.explain(scores)} >= {self.fusion.reject_at}")
        if human:
            return Verdict(REJECTED, "human", "; ".join(human))
        borderline = []
        if self.fusion and fused >= self.fusion.review_from:
            borderline.append(f"{self.fusion.explain(scores)} >= {self.fusion.review_from}")
        borderline += self._hits(scores, "human_classes", band=True) + self._hits(scores, "nsfw_classes", band=True)
        if borderline:
            return Verdict(HELD, "needs_review", "; ".join(borderline))
        return Verdict(KEPT, "", "")


def rule_for(specs: Sequence[DetectorSpec], fusion: Fusion | None) -> DecisionRule:
    """The rule for the selected detectors: with `fusion` only when every detector it reads is
    selected (its weights were fitted on all of their scores; a missing one would read as "nothing
    seen" and lower every fused score)."""
    if fusion is not None:
        missing = sorted(fusion.detectors - {spec.name for spec in specs})
        if missing:
            raise RegistryError(f"the fusion model reads detector(s) {', '.join(missing)}, which are not selected; "
                                "select them, or decide by per-detector thresholds with --fusion=none")
        # A class the detector's entry does not score would read as 0 in every photo, silently (a context class
        # such as nanodet_person.bird needs the registry entry that declares its column).
        scored = {spec.score_name(cls) for spec in specs for cls in spec.scored_classes}
        unscored = sorted(set(fusion.features) - scored)
        if unscored:
            raise RegistryError(f"the fusion model reads {', '.join(unscored)}, which no selected detector's registry "
                                "entry scores; pass the registry the model was fitted with (--model_registry)")
        # A floor rejects as `human`: on a context class (a boat) or an nsfw class it would reject for the wrong reason.
        human = {spec.score_name(cls) for spec in specs for cls in spec.human_classes}
        not_human = sorted(feature for feature, _ in fusion.floors if feature not in human)
        if not_human:
            raise RegistryError(f"the fusion model has floors on {', '.join(not_human)}, which no selected detector "
                                "declares a human class: a floor rejects a photo as human")
        # A human class the model reads with weight 0 (and no floor) is decided by nothing: the model covers it,
        # so its own threshold is not used, and its score cannot move the fused one (centerface ran, ~70% of the
        # CPU, and a 0.999 face changed nothing).
        floored = {feature for feature, _ in fusion.floors}
        idle = sorted(feature for feature, weight in zip(fusion.features, fusion.weights, strict=False)
                      if weight == 0 and feature in human and feature not in floored)
        if idle:
            raise RegistryError(f"the fusion model gives {', '.join(idle)} weight 0 and no floor: that human class "
                                "would decide nothing; drop its detector or use a model that reads it")
    return DecisionRule(tuple(specs), fusion)
