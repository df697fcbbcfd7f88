import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detectors.decision import HELD, KEPT, REJECTED, rule_for
from pipeline.detectors.fusion import Fusion, TreeNode
from pipeline.detectors.registry import RegistryError, load_registry, select

SPECS = select(load_registry(), "centerface,ssdlite_person,open_nsfw")
FUSION = Fusion(("centerface.face", "ssdlite_person.person"), (1.0, 1.0), 4.0, 0.8, 0.3, sha256="f" * 64)


def test_without_fusion_each_class_decides_by_its_own_threshold_and_band():
    rule = rule_for(SPECS, None)
    assert rule.decide({"centerface.face": 0.9}) == (REJECTED, "human", "centerface.face 0.900 >= 0.5")
    assert rule.decide({"open_nsfw.nsfw": 0.95}).reason == "nsfw"
    held = rule.decide({"ssdlite_person.person": 0.35})
    assert (held.decision, held.reason) == (HELD, "needs_review")
    assert "ssdlite_person.person 0.350 >= 0.3" in held.detail
    assert rule.decide({"centerface.face": 0.1}) == (KEPT, "", "")


def test_a_score_exactly_at_a_threshold_or_band_start_is_decided_as_at_or_above():
    """"At or above": a face scored exactly at its threshold is rejected and a person exactly at its band's start is
    held, without fusion and with the fused score exactly at reject_at or review_from. Read as "above" (a `<` for a
    `<=`), a photo scored exactly 0.5 by centerface was kept."""
    face, person = (next(spec for spec in SPECS if spec.name == name) for name in ("centerface", "ssdlite_person"))
    rule = rule_for(SPECS, None)
    assert rule.decide({"centerface.face": face.thresholds["face"]}).decision == REJECTED
    assert rule.decide({"ssdlite_person.person": person.review_band["person"]}).decision == HELD
    scores = {"centerface.face": 0.1, "ssdlite_person.person": 0.1}
    fused = FUSION.score(scores)
    at_reject = Fusion(FUSION.features, FUSION.weights, FUSION.bias, fused, fused / 2, sha256="c" * 64)
    at_review = Fusion(FUSION.features, FUSION.weights, FUSION.bias, min(1.0, fused * 2), fused, sha256="b" * 64)
    assert rule_for(SPECS, at_reject).decide(scores).decision == REJECTED
    assert rule_for(SPECS, at_review).decide(scores).decision == HELD


def test_with_fusion_the_fused_score_decides_the_classes_it_reads():
    rule = rule_for(SPECS, FUSION)
    alone = {"centerface.face": 0.6, "ssdlite_person.person": 0.0001}  # above centerface's own 0.5 threshold
    assert FUSION.score(alone) < FUSION.review_from
    assert rule.decide(alone).decision == KEPT
    together = {"centerface.face": 0.3, "ssdlite_person.person": 0.3}  # each under its own band start
    assert FUSION.score(together) >= FUSION.reject_at
    verdict = rule.decide(together)
    assert verdict.decision == REJECTED and verdict.reason == "human" and verdict.detail.startswith("fused ")
    middle = {"centerface.face": 0.1, "ssdlite_person.person": 0.1}
    assert FUSION.review_from <= FUSION.score(middle) < FUSION.reject_at
    assert rule.decide(middle).decision == HELD


def test_nsfw_keeps_its_own_threshold_under_fusion():
    verdict = rule_for(SPECS, FUSION).decide({"open_nsfw.nsfw": 0.9})
    assert verdict.decision == REJECTED and verdict.reason == "nsfw"


def test_a_fusion_model_reading_an_unselected_detector_is_refused():
    with pytest.raises(RegistryError, match="ssdlite_person"):
        rule_for(select(load_registry(), "centerface"), FUSION)


def test_a_fusion_model_giving_a_selected_human_class_no_weight_is_refused():
    """centerface.face at weight 0: the model covers the class (its own threshold unused), and a 0.999 face moved
    nothing while centerface ran. A weight-0 nsfw class keeps its own threshold (the default's open_nsfw)."""
    idle = Fusion(("centerface.face", "ssdlite_person.person"), (0.0, 1.0), 4.0, 0.8, 0.3, sha256="e" * 64)
    with pytest.raises(RegistryError, match=r"centerface\.face weight 0"):
        rule_for(SPECS, idle)
    nsfw_idle = Fusion(("centerface.face", "ssdlite_person.person", "open_nsfw.nsfw"), (1.0, 1.0, 0.0), 4.0, 0.8,
                       0.3, sha256="d" * 64)
    assert rule_for(SPECS, nsfw_idle).decide({"open_nsfw.nsfw": 0.95}).reason == "nsfw"


def test_a_fusion_model_reading_a_class_no_selected_entry_scores_is_refused():
    """nanodet_person.boat is scored only by an entry that declares that context column (the candidate's
    registry): under the built-in entry it would read 0 in every photo, silently."""
    reads_boat = Fusion(features=("nanodet_person.person", "nanodet_person.boat"), weights=(1.0, -0.2), bias=0.0,
                        reject_at=0.9, review_from=0.5)
    with pytest.raises(RegistryError, match=r"nanodet_person\.boat"):
        rule_for(select(load_registry(), "nanodet_person"), reads_boat)
    with_columns = load_registry(str(Path(__file__).parents[1] / "models" / "candidate_columns_registry.json"))
    rule = rule_for(select(with_columns, "nanodet_person"), reads_boat)
    assert not reads_boat.monotone  # a negative weight: no decision from partial scores (Detect runs them all)
    assert not rule.certainly_human({"nanodet_person.person": 1.0})


HUMAN = ("centerface.face", "ssdlite_person.person")
GRID = (0.0, 0.1, 0.3, 0.6, 0.9, 1.0)


def every_completion_rejected(rule, partial: dict[str, float]) -> bool:
    """The oracle: every way the human scores not seen yet could come out (each can only rise, to any value
    of a grid, or stay), decided in full, is rejected as human."""
    completions = [{**partial, **{name: max(partial.get(name, 0.0), value) for name, value in zip(HUMAN, values,
                                                                                                 strict=True)}}
                   for values in itertools.product(GRID, repeat=len(HUMAN))]
    return all(rule.decide(full)[:2] == (REJECTED, "human") for full in completions)


@settings(max_examples=300, deadline=None)
@given(seen=st.dictionaries(st.sampled_from(HUMAN), st.floats(0.0, 1.0)), nsfw=st.floats(0.0, 0.49))
def test_certainly_human_exactly_when_every_completion_is_rejected_as_human(seen, nsfw):
    """The oracle: every way the scores not seen yet could come out (each human score can only rise,
    to any value of a grid, or stay), decided in full. nsfw scores are never partial (the stage never
    skips an nsfw detector), so they are fixed here, below the nsfw threshold."""
    rule = rule_for(SPECS, FUSION)
    partial = {**seen, "open_nsfw.nsfw": nsfw}
    assert rule.certainly_human(partial) == every_completion_rejected(rule, partial)


def test_certainly_human_is_found_both_ways_and_never_with_a_negative_weight():
    rule = rule_for(SPECS, FUSION)
    assert rule.certainly_human({"ssdlite_person.person": 0.9999})  # the fused score alone, face not seen yet
    assert not rule.certainly_human({"ssdlite_person.person": 0.2})
    assert rule_for(SPECS, None).certainly_human({"centerface.face": 0.7})  # its own threshold
    negative = Fusion(FUSION.features, (1.0, -1.0), 4.0, 0.8, 0.3)
    seen = {"centerface.face": 0.9}
    assert negative.score(seen) >= negative.reject_at
    # ...but a person score still to come could pull it under: not certain.
    assert not rule_for(SPECS, negative).certainly_human(seen)
    assert rule_for(SPECS, negative).decide({**seen, "ssdlite_person.person": 0.9999}).decision == KEPT


# Monotone trees over the same two scores (the shape of tests/test_fusion.py's hand-made model).
TREES = Fusion(HUMAN, (), 0.0, 0.8, 0.3, trees=(
    (TreeNode(0, 0.0, 1, 2, 0.0), TreeNode(-1, 0.0, 0, 0, -1.0), TreeNode(1, 1.0, 3, 4, 0.0),
     TreeNode(-1, 0.0, 0, 0, 1.0), TreeNode(-1, 0.0, 0, 0, 4.0)),
    (TreeNode(1, -2.0, 1, 2, 0.0), TreeNode(-1, 0.0, 0, 0, -2.0), TreeNode(-1, 0.0, 0, 0, 0.5))),
    baseline=-1.0)


@settings(max_examples=300, deadline=None)
@given(seen=st.dictionaries(st.sampled_from(HUMAN), st.floats(0.0, 1.0)), nsfw=st.floats(0.0, 0.49))
def test_certainly_human_under_monotone_trees_exactly_when_every_completion_is_rejected(seen, nsfw):
    """The same oracle for a trees model: monotone, so a partial set of scores already at `reject_at` is
    rejected whatever the rest adds, and one below it is not certain."""
    assert TREES.monotone
    rule = rule_for(SPECS, TREES)
    partial = {**seen, "open_nsfw.nsfw": nsfw}
    assert rule.certainly_human(partial) == every_completion_rejected(rule, partial)
