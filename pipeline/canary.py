"""The launch check that the selected detectors still see people: each is run on real photographs of
people that the package ships (`fixtures/demo`), stored as a run stores them, before any input is read.

A registry entry can pass every bound (`detectors/registry.py`) and still be blind: a normalisation
that scales the pixels to almost nothing, channels swapped, an output that is not the class it names.
A blind human detector reads "no person" on every photo and the job would publish people. So at
launch:

- every selected detector that has human classes must score one of its classes at least where that
  class's review band starts (its threshold without a band) on at least one canary: the astronaut
  and the cameraman, whole, and the cameraman's hands on his camera (a hand detector sees those);
- and the decision itself (the fusion model or the thresholds, with --detect_thresholds and
  --review_band applied) must not keep either whole person.

A selection without human classes (`--detectors=open_nsfw`, `none`) has nothing to check.
`--skip_canary` runs anyway, for a registry whose detectors are not meant to see these people; the
manifest records that it was given. Costs a few seconds at launch (CPU; the models are loaded once
more, by the launcher, and dropped).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from pipeline.detectors.decision import KEPT, rule_for
from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import RuntimeConfig, create_session, photo_scores
from pipeline.detectors.registry import DetectorSpec, RegistryError
from pipeline.evaluation import stored_jpeg
from pipeline.records import Photo

DEMO = Path(__file__).parent / "fixtures" / "demo"
# (name, file, crop box or None, a whole person the decision must not keep)
CANARIES = (
    ("astronaut", "astronaut.jpg", None, True),
    ("cameraman", "camera.jpg", None, True),
    ("cameraman's hands", "camera.jpg", (150, 175, 350, 320), False),
)


class BlindDetector(RegistryError):
    """A selected detector, or the decision over them, does not see the people in the canary photos."""


def canary_jpegs(max_side: int) -> list[bytes]:
    jpegs = []
    for _, file, box, _ in CANARIES:
        with Image.open(DEMO / file) as img:
            jpegs.append(stored_jpeg(img.crop(box) if box else img, max_side))
    return jpegs


_SCORED: dict[tuple, list[dict[str, float]]] = {}  # one launch's scores, for the next launch in this process


def canary_scores(specs: list[DetectorSpec], runtime: RuntimeConfig, max_side: int) -> list[dict[str, float]]:
    """Per canary, every selected detector's best score per class. On the launcher's CPU unless the
    job runs here on a GPU it asked for (a Dataflow launcher has none); the same specs (normalisation
    included), tiling and size are scored once per process."""
    runtime = dataclasses.replace(runtime, require_gpu=False, device="cpu" if runtime.device == "cuda" else
                                  runtime.device)
    key = (repr(specs), runtime.device, runtime.tile_min_side, runtime.intra_op_threads, max_side)
    if key not in _SCORED:
        photos = [Photo(name, image=jpeg) for (name, *_), jpeg in zip(CANARIES, canary_jpegs(max_side), strict=True)]
        scores: list[dict[str, float]] = [{} for _ in photos]
        for spec in specs:
            # A session of its own, dropped when scored: the job's workers (other processes, or
            # Dataflow's machines) load their own, and the launcher should not hold a copy meanwhile.
            session = create_session(spec, runtime)
            for index, classes in enumerate(photo_scores(spec, session, photos, runtime.tile_min_side)):
                scores[index].update({spec.score_name(cls): value for cls, value in classes.items()})
            del session
        _SCORED[key] = scores
    return _SCORED[key]


def check_canaries(specs: list[DetectorSpec], fusion: Fusion | None, runtime: RuntimeConfig,
                   max_side: int) -> None:
    """Raises BlindDetector naming what does not see the canaries (module docstring)."""
    if not any(spec.human_classes for spec in specs):
        return
    scores = canary_scores(specs, runtime, max_side)
    for spec in specs:
        if not spec.human_classes:
            continue
        # Each class against where its band starts, best canary first: the closest miss is what is reported.
        margins = sorted(((scores_of.get(spec.score_name(cls), 0.0) - _band_start(spec, cls), cls, name,
                           scores_of.get(spec.score_name(cls), 0.0))
                          for (name, *_), scores_of in zip(CANARIES, scores, strict=True)
                          for cls in spec.human_classes), reverse=True)
        margin, cls, name, score = margins[0]
        if margin < 0:
            raise BlindDetector(
                f"detector {spec.name} does not see the people in the canary photos: its best is "
                f"{spec.score_name(cls)} {score:.3f} on the {name}, below {_band_start(spec, cls)} where its review "
                "band starts. Check its registry entry (input normalisation, channels, outputs) with "
                "`pass-pipeline evaluate`; --skip_canary runs anyway")
    rule = rule_for(specs, fusion)
    for (name, _, _, whole), scores_of in zip(CANARIES, scores, strict=True):
        if whole and rule.decide(scores_of).decision == KEPT:
            raise BlindDetector(
                f"the selected detectors and decision would keep the canary photo of the {name} (a person): "
                f"{', '.join(f'{key} {value:.3f}' for key, value in sorted(scores_of.items()))}. "
                "Check the thresholds, --review_band and the fusion model; --skip_canary runs anyway")


def _band_start(spec: DetectorSpec, cls: str) -> float:
    return spec.review_band.get(cls, spec.thresholds[cls])
