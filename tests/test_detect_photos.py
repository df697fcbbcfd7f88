"""The human-free bars on real photographs, through the Detect stage exactly as a run uses it (the
default detectors and the fusion model of models/registry.json): hands only, hands and forearm, and
tiny people are kept out of the dataset (rejected or held for review); a beetle, a tower, a sunset
and a primate are kept. Photographs and licences: tests/photos/SOURCES.md (tuning photographs: this
pins the shipped model's behaviour; README's held-out figures measure it).

One bar is not met by the shipped model and is written as a strict expected failure, so the day it
passes the test says so: a macaque (NanoDet reads it as a person: rejected). The grayscale hand and
forearm on a braille board, the other such bar under the first fusion model (fused 0.42), is kept out
since NanoDet joined the defaults.

The candidates for heldout10 to heldout14 (models/README.md; none adopted) are held to the same bars, so that a
win on held-out photographs cannot come with a loss here unnoticed (the signed variants measured beside the first
held the tower)."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.detectors.fusion import builtin_fusion, read_fusion
from pipeline.detectors.registry import load_registry, select
from pipeline.stages.detect import Detect
from tests.conftest import local_pipeline, photo, runtime

PHOTOS = Path(__file__).parent / "photos"
OUT = ("hand_feeding_bird", "hands_reading_braille", "hands_and_sleeve_holding_card", "tiny_tourists_at_pisa",
       "tiny_people_at_eiffel_tower", "hand_and_forearm_on_braille_board")
KEPT = ("ladybird_beetle", "eiffel_tower_no_people", "dallas_sunset", "young_gorilla")
NOT_YET = {"macaque": "kept"}
# Filled by the pipeline's last step: the local runner runs it in this process, and a module-level
# dict (unlike a closure, which is pickled) is the same object there.
OUTCOMES: dict[str, str] = {}


def _record(pairs: list[tuple[str, str]]) -> None:
    OUTCOMES.update(pairs)


def _decide(specs, fusion) -> dict[str, str]:
    """{photo: kept | rejected | needs_review} for every test photograph, from one Detect run."""
    names = sorted(path.stem for path in PHOTOS.glob("*.jpg"))
    inputs = [photo(name, image=(PHOTOS / f"{name}.jpg").read_bytes()) for name in names]
    OUTCOMES.clear()
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect(specs, runtime(max_batch=4), fusion=fusion)
        outcomes = ((out.kept | beam.Map(lambda ph: (ph.photo_id, "kept"))),
                    (out.rejected | beam.Map(lambda r: (r.photo_id, r.reason))))
        everything = outcomes | beam.Flatten()
        assert_that(everything | beam.Map(lambda pair: pair[0]), equal_to(names), label="each photo decided once")
        assert_that(everything, _record, label="record")
    assert sorted(OUTCOMES) == names
    return dict(OUTCOMES)


@pytest.fixture(scope="module")
def decided() -> dict[str, str]:
    return _decide(select(load_registry(), "default"), builtin_fusion())


def _decided_by(registry: str, fusion: str) -> dict[str, str]:
    """The photographs decided by a candidate: its fusion model read through its registry (models/)."""
    models = Path(__file__).parents[1] / "models"
    return _decide(select(load_registry(str(models / registry)), "default"), read_fusion(str(models / fusion)))


@pytest.fixture(scope="module")
def decided_by_the_candidate() -> dict[str, str]:
    """The same photographs under heldout10's candidate (models/README.md): its registry's NanoDet and OIDv4
    entries score five context classes, which its fusion model reads beside the default's three scores."""
    return _decided_by("candidate_columns_registry.json", "candidate_columns.json")


@pytest.fixture(scope="module")
def decided_by_the_probe_candidate() -> dict[str, str]:
    """The same photographs under heldout11's candidate: heldout10's context columns plus a probe on open_nsfw's own
    last features (`decoder.context_probes`, scene_probe_v1.json)."""
    return _decided_by("candidate_probe_registry.json", "candidate_probe.json")


@pytest.fixture(scope="module")
def decided_by_the_heldout12_candidate() -> dict[str, str]:
    """The same photographs under heldout12's candidate (not adopted): heldout10's class columns refitted on all twelve
    spent splits (models/candidate_columns_v2.json, read through candidate_columns_registry.json)."""
    return _decided_by("candidate_columns_registry.json", "candidate_columns_v2.json")


@pytest.fixture(scope="module")
def decided_by_the_heldout13_candidate() -> dict[str, str]:
    """The same photographs under heldout13's candidate (not adopted): the class columns refitted on all thirteen
    spent splits at a higher recall (models/candidate_columns_v3.json, read through candidate_columns_registry.json)."""
    return _decided_by("candidate_columns_registry.json", "candidate_columns_v3.json")


@pytest.fixture(scope="module")
def decided_by_the_heldout14_candidate() -> dict[str, str]:
    """The same photographs under heldout14's candidate (not adopted): the class columns refitted on all fourteen
    spent splits with a face floor (models/candidate_columns_v4.json, read through candidate_columns_registry.json)."""
    return _decided_by("candidate_columns_registry.json", "candidate_columns_v4.json")


# The shipped decision and the candidates are held to the bars (module docstring).
MODELS = ("decided", "decided_by_the_candidate", "decided_by_the_probe_candidate",
          "decided_by_the_heldout12_candidate", "decided_by_the_heldout13_candidate",
          "decided_by_the_heldout14_candidate")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", OUT)
def test_people_and_body_parts_are_kept_out(request, model, name):
    decided = request.getfixturevalue(model)
    assert decided[name] in ("human", "needs_review"), decided[name]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", KEPT)
def test_beetle_tower_sunset_and_gorilla_are_kept(request, model, name):
    """(The signed variants measured beside the candidate held the tower: docs/held-out-evaluation.md.)"""
    assert request.getfixturevalue(model)[name] == "kept"


@pytest.mark.parametrize("name", sorted(NOT_YET))
@pytest.mark.xfail(strict=True, reason="a bar the shipped fusion model does not meet yet (module docstring)")
def test_bars_not_met_yet(decided, name):
    if NOT_YET[name] == "out":
        assert decided[name] in ("human", "needs_review"), decided[name]
    else:
        assert decided[name] == "kept", decided[name]


def test_the_candidate_holds_the_macaque_for_review(decided_by_the_candidate):
    """Not kept either (the bar the default misses too): held where the default rejects."""
    assert decided_by_the_candidate["macaque"] == "needs_review"


def test_the_probe_candidate_keeps_the_macaque(decided_by_the_probe_candidate):
    """The bar the default misses: NanoDet reads a person (0.63) and CenterFace a face (0.42), which the default
    fuses to 0.76 (rejected); the candidate fuses them with the probe's 0.10 (0.96 on the astronaut) and a smaller
    face weight to 0.38, under its review threshold (0.48). The macaque is a tuning photograph its probe and fusion
    model were fitted on, so this pins a fitted decision (heldout11 measured the candidate: not adopted)."""
    assert decided_by_the_probe_candidate["macaque"] == "kept"


def test_the_heldout13_candidate_decides_the_macaque_as_the_heldout12_one_did(decided_by_the_heldout13_candidate,
                                                                              decided_by_the_heldout12_candidate):
    """Held for review by both (not kept: the bar the default misses too), where the default rejects it."""
    assert decided_by_the_heldout13_candidate["macaque"] == decided_by_the_heldout12_candidate["macaque"]


def test_the_heldout14_candidate_decides_the_macaque_as_the_heldout13_one_did(decided_by_the_heldout14_candidate,
                                                                              decided_by_the_heldout13_candidate):
    """Held for review by both (its face score, 0.42, is under the floor), where the default rejects it."""
    assert decided_by_the_heldout14_candidate["macaque"] == "needs_review"
    assert decided_by_the_heldout13_candidate["macaque"] == "needs_review"
