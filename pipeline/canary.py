"""The launch check that the selected detectors still see people: each is run on real photographs of
people that the package ships (`fixtures/demo`), stored as a run stores them, before any input is read.

A registry entry can pass every bound (`detectors/registry.py`) and still be blind: a normalisation
that scales the pixels to almost nothing, channels swapped, an output that is not the class it names.
A blind human detector reads "no person" on every photo and the job would publish people. So at
launch:

- every selected detector that has human classes must tell people from clean photos: for one of its
  classes, its best score on the photos of people (the astronaut and the cameraman, whole, and the
  cameraman's hands on his camera, which a hand detector sees) at least `MARGIN` above its best on
  the clean ones (a coffee cup, a brick wall). A blind model scores them all alike (0.007 each for
  CenterFace given `scale` 0.0001); the registered detectors part them by 0.43 (MediaPipe's palm
  detector) to 0.87 (SSDLite). Not their thresholds: a detector may be meant to flag only what it
  is sure of (the pose candidate's band starts at 0.9);
- and the decision itself (the fusion model or the thresholds, with --detect_thresholds and
  --review_band applied) must not keep either whole person.

A selection without human classes (`--detectors=open_nsfw`, `none`) has nothing to check.
`--skip_canary` runs anyway, for a registry whose detectors are not meant to see these people; the
manifest records that it was given. Costs a few seconds at launch (CPU; the models are loaded once
more, by the launcher, and dropped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from pipeline.detectors.decision import KEPT, rule_for
from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import RuntimeConfig, create_session, photo_scores
from pipeline.detectors.registry import DetectorSpec, RegistryError
from pipeline.evaluation import stored_jpeg
from pipeline.records import Photo

DEMO = Path(__file__).parent / "fixtures" / "demo"
WHOLE, PART, CLEAN = "a whole person", "part of a person", "no person"
# (name, file, crop box or None, what it shows)
CANARIES = (
    ("astronaut", "astronaut.jpg", None, WHOLE),
    ("cameraman", "camera.jpg", None, WHOLE),
    ("cameraman's hands", "camera.jpg", (150, 175, 350, 320), PART),
    ("coffee cup", "coffee.jpg", None, CLEAN),
    ("brick wall", "brick.jpg", None, CLEAN),
)
MARGIN = 0.2  # how much higher a detector must score people than clean photos


class BlindDetector(RegistryError):
    """A selected detector does not tell the canary photos of people from the clean ones, or the
    decision over them would keep a person."""


def canary_jpegs(max_side: int) -> list[bytes]:
    jpegs = []
    for _, file, box, _ in CANARIES:
        with Image.open(DEMO / file) as img:
            jpegs.append(stored_jpeg(img.crop(box) if box else img, max_side))
    return jpegs


_SCORED: dict[tuple, list[dict[str, float]]] = {}  # one launch's scores, for the next launch in this process


def canary_scores(specs: list[DetectorSpec], runtime: RuntimeConfig, max_side: int,
                  models: Mapping[str, bytes] | None = None) -> list[dict[str, float]]:
    """Per canary, every selected detector's best score per class, on the job's --detect_device except
    that `cuda` becomes the CPU and no GPU is required (a Dataflow launcher has none); the same specs
    (normalisation included), tiling and size are scored once per process. `models`: model bytes by
    detector name that the launch has read and checked already (others are read here)."""
    runtime = dataclasses.replace(runtime, require_gpu=False, device="cpu" if runtime.device == "cuda" else
                                  runtime.device)
    key = (repr(specs), runtime.device, runtime.tile_min_side, runtime.intra_op_threads, max_side)
    if key not in _SCORED:
        photos = [Photo(name, image=jpeg) for (name, *_), jpeg in zip(CANARIES, canary_jpegs(max_side), strict=True)]
        scores: list[dict[str, float]] = [{} for _ in photos]
        for spec in specs:
            # A session of its own (not the process's shared one), gone once scored: the job's workers
            # (other processes, or Dataflow's machines) load their own, the launcher holds no copy meanwhile.
            session = create_session(spec, runtime, model_bytes=(models or {}).get(spec.name))
            for index, classes in enumerate(photo_scores(spec, session, photos, runtime.tile_min_side)):
                scores[index].update({spec.score_name(cls): value for cls, value in classes.items()})
        _SCORED[key] = scores
    return _SCORED[key]


def check_canaries(specs: list[DetectorSpec], fusion: Fusion | None, runtime: RuntimeConfig,
                   max_side: int, models: Mapping[str, bytes] | None = None) -> None:
    """Raises BlindDetector naming what does not see the canaries (module docstring). `models`: as for
    canary_scores."""
    if not any(spec.human_classes for spec in specs):
        return
    scores = canary_scores(specs, runtime, max_side, models)
    for spec in specs:
        if not spec.human_classes:
            continue
        # Per class: (best on people - best on clean photos, class, people's best, its photo, clean best, its photo).
        parted = []
        for cls in spec.human_classes:
            by_photo = [(scores_of.get(spec.score_name(cls), 0.0), name, shows)
                        for (name, *_, shows), scores_of in zip(CANARIES, scores, strict=True)]
            person = max((score, name) for score, name, shows in by_photo if shows != CLEAN)
            clean = max((score, name) for score, name, shows in by_photo if shows == CLEAN)
            parted.append((person[0] - clean[0], cls, person, clean))
        gap, cls, person, clean = max(parted)
        if gap < MARGIN:
            raise BlindDetector(
                f"detector {spec.name} does not tell people from clean photos: its best {spec.score_name(cls)} "
                f"is {person[0]:.3f} on the canary photo of the {person[1]} and {clean[0]:.3f} on the {clean[1]} "
                f"(at least {MARGIN} apart expected). Check its registry entry (input normalisation, channels, "
                "outputs) with `pass-pipeline evaluate`; --skip_canary runs anyway")
    rule = rule_for(specs, fusion)
    for (name, *_, shows), scores_of in zip(CANARIES, scores, strict=True):
        if shows == WHOLE and rule.decide(scores_of).decision == KEPT:
            raise BlindDetector(
                f"the selected detectors and decision would keep the canary photo of the {name} (a person): "
                f"{', '.join(f'{key} {value:.3f}' for key, value in sorted(scores_of.items()))}. "
                "Check the thresholds, --review_band and the fusion model; --skip_canary runs anyway")
