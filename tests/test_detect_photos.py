"""The human-free bars on real photographs, through the Detect stage exactly as a run uses it (the
default detectors and the fusion model of models/registry.json): hands only, hands and forearm, and
tiny people are kept out of the dataset (rejected or held for review); a beetle, a tower, a sunset
and a primate are kept. Photographs and licences: tests/photos/SOURCES.md (tuning photographs: this
pins the shipped model's behaviour; README's held-out figures measure it).

One bar is not met by the shipped model and is written as a strict expected failure, so the day it
passes the test says so: a macaque (NanoDet reads it as a person: rejected). The grayscale hand and
forearm on a braille board, the other such bar under the first fusion model (fused 0.42), is kept out
since NanoDet joined the defaults."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.detectors.fusion import builtin_fusion
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


@pytest.fixture(scope="module")
def decided() -> dict[str, str]:
    """{photo: kept | rejected | needs_review} for every test photograph, from one Detect run."""
    names = sorted(path.stem for path in PHOTOS.glob("*.jpg"))
    inputs = [photo(name, image=(PHOTOS / f"{name}.jpg").read_bytes()) for name in names]
    specs = select(load_registry(), "default")
    OUTCOMES.clear()
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect(specs, runtime(max_batch=4), fusion=builtin_fusion())
        outcomes = ((out.kept | beam.Map(lambda ph: (ph.photo_id, "kept"))),
                    (out.rejected | beam.Map(lambda r: (r.photo_id, r.reason))))
        everything = outcomes | beam.Flatten()
        assert_that(everything | beam.Map(lambda pair: pair[0]), equal_to(names), label="each photo decided once")
        assert_that(everything, _record, label="record")
    assert sorted(OUTCOMES) == names
    return dict(OUTCOMES)


@pytest.mark.parametrize("name", OUT)
def test_people_and_body_parts_are_kept_out(decided, name):
    assert decided[name] in ("human", "needs_review"), decided[name]


@pytest.mark.parametrize("name", KEPT)
def test_beetle_tower_sunset_and_gorilla_are_kept(decided, name):
    assert decided[name] == "kept"


@pytest.mark.parametrize("name", sorted(NOT_YET))
@pytest.mark.xfail(strict=True, reason="a bar the shipped fusion model does not meet yet (module docstring)")
def test_bars_not_met_yet(decided, name):
    if NOT_YET[name] == "out":
        assert decided[name] in ("human", "needs_review"), decided[name]
    else:
        assert decided[name] == "kept", decided[name]
