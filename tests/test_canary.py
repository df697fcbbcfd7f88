"""The launch canary: real models on the package's real photographs of people. A detector made blind
by a registry entry inside every bound, or a decision that would keep a person, stops the job at
launch with a line naming it; the default selection passes; --skip_canary runs anyway."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline.canary import CANARIES, BlindDetector, canary_jpegs, check_canaries
from pipeline.cli import main
from pipeline.detectors.fusion import builtin_fusion
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import BUILTIN_REGISTRY, load_registry, select, with_overrides
from tests.conftest import DETECT_THREADS, LOCAL

RUNTIME = RuntimeConfig(device="cpu", intra_op_threads=DETECT_THREADS)


def test_the_default_selection_and_decision_see_the_canaries():
    specs = select(load_registry(), "default")
    check_canaries(specs, builtin_fusion(), RUNTIME, 512)  # raises if not


def test_a_detector_blinded_by_its_normalisation_is_named():
    """scale 0.0001 is inside the registry's bounds; it darkens CenterFace's input to nothing."""
    specs = select(load_registry(), "default")
    blind = [dataclasses.replace(s, input=dataclasses.replace(s.input, scale=0.0001)) if s.name == "centerface"
             else s for s in specs]
    with pytest.raises(BlindDetector, match=r"detector centerface does not tell people from clean photos: its best "
                                            r"centerface\.face is 0\.007 on .* and 0\.007 on"):
        check_canaries(blind, builtin_fusion(), RUNTIME, 512)


def test_a_decision_that_would_keep_a_whole_person_is_refused():
    """NanoDet alone at 0.8 still reaches its band on the cameraman (0.88), but keeps the astronaut (0.72)."""
    specs = with_overrides(select(load_registry(), "nanodet_person"), "nanodet_person.person=0.8",
                           "nanodet_person.person=0.8")
    with pytest.raises(BlindDetector, match="would keep the canary photo of the astronaut"):
        check_canaries(specs, None, RUNTIME, 512)


def test_a_selection_without_human_classes_has_nothing_to_check():
    check_canaries(select(load_registry(), "open_nsfw"), None, RUNTIME, 512)


def test_the_canaries_are_people_stored_as_a_run_stores_them():
    jpegs = canary_jpegs(512)
    assert [name for name, *_ in CANARIES] == ["astronaut", "cameraman", "cameraman's hands", "coffee cup",
                                               "brick wall"]
    assert all(jpeg[:2] == b"\xff\xd8" for jpeg in jpegs) and len(set(jpegs)) == 5


def test_every_registered_detector_and_the_pose_candidate_pass():
    """Every built-in detector tells the people from the clean photos, the hand detector too, and the
    documented pose candidate (its band starts at 0.9, above its best on the canaries) is not refused."""
    registry = load_registry()
    assert set(registry) == {"centerface", "ssdlite_person", "open_nsfw", "nanodet_person", "oidv4_person",
                             "mediapipe_pose", "mediapipe_palm"}
    for extra in ("mediapipe_pose", "mediapipe_palm", "ssdlite_person"):
        specs = select(registry, f"centerface,open_nsfw,nanodet_person,oidv4_person,{extra}")
        check_canaries(specs, builtin_fusion(), RUNTIME, 512)
    candidate = load_registry(str(BUILTIN_REGISTRY.parent / "candidate_pose_review.json"))
    specs = select(candidate, "centerface,open_nsfw,nanodet_person,oidv4_person,mediapipe_pose")
    check_canaries(specs, builtin_fusion(), RUNTIME, 512)


def test_the_probe_candidate_passes_the_launch_check_with_its_probe_scored():
    """models/candidate_probe_registry.json with its fusion model: the canary runs open_nsfw with the scene probe
    (a probe of the wrong width would fail here, at launch), and the decision keeps neither person."""
    from pipeline.detectors.fusion import read_fusion

    candidate = select(load_registry(str(BUILTIN_REGISTRY.parent / "candidate_probe_registry.json")), "default")
    assert [spec.name for spec in candidate if spec.probes] == ["open_nsfw"]
    check_canaries(candidate, read_fusion(str(BUILTIN_REGISTRY.parent / "candidate_probe.json")), RUNTIME, 512)


def test_the_pose_detector_alone_would_keep_the_cameraman_and_is_refused():
    """It sees people (0.81 on the astronaut, 0.30 at most on the clean photos), but at its threshold
    and band alone it keeps the cameraman (0.62): a selection that would publish him."""
    with pytest.raises(BlindDetector, match="would keep the canary photo of the cameraman"):
        check_canaries(select(load_registry(), "mediapipe_pose"), None, RUNTIME, 512)


def test_a_blind_registry_entry_stops_the_run_at_launch_and_skip_canary_runs_anyway(tmp_path, capsys):
    """The whole path: a user registry overriding CenterFace with channels scaled to nothing."""
    registry = json.loads(BUILTIN_REGISTRY.read_text())
    entry = next(e for e in registry["detectors"] if e["name"] == "centerface")
    entry["input"]["scale"] = 0.0001
    entry["file"] = load_registry()["centerface"].file  # absolute: the user's file is elsewhere
    (tmp_path / "mine.json").write_text(json.dumps({"detectors": [entry]}))
    (tmp_path / "in.tsv").write_text("")
    base = ["run", f"--input={tmp_path / 'in.tsv'}", f"--model_registry={tmp_path / 'mine.json'}", *LOCAL,
            "--allow_empty"]
    assert main([*base, f"--output={tmp_path / 'out'}"]) == 2
    assert "detector centerface does not tell people from clean photos" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*base, f"--output={tmp_path / 'out2'}", "--skip_canary"]) == 0


def test_a_launch_reads_each_model_file_once(tmp_path, monkeypatch):
    """Its sha256 check, output check and canary share one read (on gs:// each read is a download of the model)."""
    from collections import Counter

    from pipeline import canary
    from pipeline.commands.run import pipeline_options, preflight
    from pipeline.detectors import registry
    from pipeline.options import PassOptions

    reads, read_bytes = Counter(), registry.read_bytes

    def counted(path):
        reads[path] += 1
        return read_bytes(path)

    monkeypatch.setattr(registry, "read_bytes", counted)
    monkeypatch.setattr(canary, "_SCORED", {})  # scored by an earlier test in this process: not cached here
    (tmp_path / "in.tsv").write_text("")
    opts = pipeline_options([f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}", *LOCAL,
                             "--detectors=default"]).view_as(PassOptions)
    preflight(opts, "DirectRunner")
    files = {spec.file for spec in select(load_registry(), "default")}
    assert {path: count for path, count in reads.items() if path in files} == {file: 1 for file in files}
