import pytest

from pipeline.detectors.decision import HELD, KEPT, REJECTED, rule_for
from pipeline.detectors.fusion import Fusion
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
