"""pipeline/photo_sets/heldout_record.py and `pass-pipeline evaluate --photos --record=FILE`."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.commands import evaluate as evaluate_command
from pipeline.detectors.fusion import builtin_fusion, parse_fusion, read_fusion
from pipeline.detectors.registry import BUILTIN_REGISTRY, load_registry, select
from pipeline.io import whole_file
from pipeline.photo_sets import heldout_record, score
from pipeline.photo_sets.fetch import Row
from pipeline.photo_sets.metrics import wilson
from pipeline.stages.image import STORAGE_RULE_VERSION

FITTED_ON = "tuning + heldout + heldout2 splits of pipeline/photo_sets/labels.csv: 3 images with a human, 2 no_person"
TODAY = datetime.date(2026, 12, 1)


def jpeg(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def photo_dir(tmp_path, monkeypatch):
    """Five flat photographs: two with a human, two clean, one depiction (rows of any split)."""
    photos = {"red.jpg": ((200, 30, 30), "person"), "pink.jpg": ((230, 120, 160), "tiny_person"),
              "green.jpg": ((30, 200, 30), "no_person"), "grey.jpg": ((90, 90, 90), "no_person"),
              "blue.jpg": ((30, 30, 200), "depiction")}
    rows = []
    for name, (color, label) in photos.items():
        data = jpeg(color)
        row = Row("pkg", "1", "pypi", f"pkg/{name}", hashlib.sha256(data).hexdigest(), 1, 1, label, "", "heldout3", "")
        (tmp_path / row.file_name).write_bytes(data)
        rows.append(row)
    monkeypatch.setattr(score, "load_rows", lambda split: rows)
    monkeypatch.setattr(evaluate_command, "_today", lambda: TODAY)
    return tmp_path


def fusion_file(tmp_path, bias: float, name: str = "model.json", fitted_on: str = FITTED_ON) -> str:
    """A one-feature logistic model over the NSFW score: a large bias rejects every photograph."""
    path = tmp_path / name
    path.write_text(json.dumps({"features": ["open_nsfw.nsfw"], "weights": [1.0], "bias": bias,
                                "reject_at": 0.9, "review_from": 0.5, "fitted_on": fitted_on}))
    return str(path)


def evaluate(photo_dir, model: str, record, split: str = "heldout3", *extra: str) -> int:
    detectors = next((e for e in extra if e.startswith("--detectors=")), "--detectors=open_nsfw")
    extra = tuple(e for e in extra if not e.startswith("--detectors="))
    return main(["evaluate", detectors, f"--fusion={model}", f"--photos={photo_dir}",
                 f"--split={split}", f"--record={record}", *extra])


@pytest.fixture
def no_scoring(monkeypatch):
    """Fails the test if a detector runs: refusals come before scoring."""
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))


def test_a_measurement_is_appended_with_the_figures_evaluate_printed(photo_dir, tmp_path, capsys):
    record = tmp_path / "records" / "model_heldout.json"
    out = tmp_path / "result.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 20.0), record, "heldout3", f"--json={out}") == 0
    assert f"recorded in {record}: heldout3, 2026-12-01" in capsys.readouterr().out
    result, written = json.loads(out.read_text()), json.loads(record.read_text())
    assert written["fusion_sha256"] == result["fusion"]["sha256"]
    assert "fitted on tuning + heldout" in written["_comment"]
    (entry,) = written["evaluations"]
    assert entry["split"] == "heldout3" and entry["images"] == 5 and entry["date"] == "2026-12-01"
    assert entry["labels"] == {"depiction": 1, "no_person": 2, "person": 1, "tiny_person": 1}
    assert entry["recall"] == result["combined"]["recall"] and entry["recall"]["successes"] == 2
    assert entry["keep_rate"] == result["combined"]["keep_rate"] and entry["keep_rate"]["successes"] == 0
    assert entry["keep_rate"]["ci95"] == pytest.approx(list(wilson(0, 2)), abs=5e-5)
    assert entry["missed"] == [] and entry["detectors"] == ["open_nsfw"]
    assert entry["storage"] == {"resize_reducing_gap": 1.0, "stored_from": score.STORED_FROM,
                                "storage_rule_version": STORAGE_RULE_VERSION}
    rule = f"--resize_reducing_gap=1.0, storage rule {STORAGE_RULE_VERSION}"
    assert entry["stored_by"] == f"{rule}, from {score.STORED_FROM}"
    assert list(entry)[:8] == ["split", "date", "images", "labels", "recall", "keep_rate", "missed", "stored_by"]


def test_evaluate_measures_and_records_the_fusion_model_its_registry_names(photo_dir, tmp_path, capsys):
    """evaluate --model_registry without --fusion decides by the registry's own fusion model, as a run does, and the
    record names that model (the entry was never read: the built-in one, or thresholds where it does not apply,
    were measured and recorded in its place)."""
    model = Path(fusion_file(tmp_path, 20.0, name="fitted.json"))
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"fusion": {"file": "fitted.json",
                                               "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
                                    "detectors": []}))
    record, out = tmp_path / "r.json", tmp_path / "result.json"
    assert main(["evaluate", "--detectors=open_nsfw", f"--model_registry={registry}", f"--photos={photo_dir}",
                 "--split=heldout3", f"--record={record}", f"--json={out}"]) == 0
    assert "recorded in" in capsys.readouterr().out
    assert json.loads(out.read_text())["fusion"]["sha256"] == read_fusion(str(model)).sha256
    assert json.loads(record.read_text())["fusion_sha256"] == read_fusion(str(model)).sha256


def test_a_registry_that_only_declares_context_classes_is_recorded_by_name_and_sha256(photo_dir, tmp_path, capsys):
    """heldout10's candidate scores five context classes through a registry of built-in entries with
    `context_columns` added: its decision is measured with those very detectors, so it may be recorded, and the
    entry says which registry file (name and sha256) it was measured with."""
    registry = Path(__file__).parents[1] / "models" / "candidate_columns_registry.json"
    record = tmp_path / "r.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 20.0), record, "heldout3", f"--model_registry={registry}") == 0
    assert "recorded in" in capsys.readouterr().out
    (entry,) = json.loads(record.read_text())["evaluations"]
    assert entry["model_registry"] == {"file": "candidate_columns_registry.json",
                                       "sha256": hashlib.sha256(registry.read_bytes()).hexdigest()}
    changed = json.loads(registry.read_text())
    changed["detectors"][0]["thresholds"]["person"] = 0.4  # anything beyond context classes: refused
    other = tmp_path / "changed_registry.json"
    other.write_text(json.dumps(changed).replace('"files/', f'"{registry.parent}/files/'))
    assert evaluate(photo_dir, fusion_file(tmp_path, 20.0), tmp_path / "r2.json", "heldout3",
                    f"--model_registry={other}") == 2
    assert "changes nanodet_person beyond declaring context classes" in capsys.readouterr().err


def test_an_entry_names_photographs_over_the_pixel_cap_and_only_when_there_are_some():
    storage = score.Storage(1.0, score.STORED_FROM, STORAGE_RULE_VERSION)
    result = {"split": "heldout9", "images": 2, "labels": {"person": 1, "no_person": 1}, "missed": [],
              "combined": {"recall": {"successes": 1, "n": 1}, "keep_rate": {"successes": 1, "n": 1}},
              "detectors": ["centerface"], "over_pixel_cap": ["pkg:b.jpg", "pkg:a.jpg"]}
    today = datetime.date(2026, 12, 3)
    assert heldout_record.entry(result, storage, today)["over_pixel_cap"] == ["pkg:a.jpg", "pkg:b.jpg"]
    assert "over_pixel_cap" not in heldout_record.entry({**result, "over_pixel_cap": []}, storage, today)


def test_a_model_that_misses_people_names_them_in_its_entry(photo_dir, tmp_path):
    record = tmp_path / "keeps_all.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, -20.0), record) == 1  # recall below 100%: exit 1, recorded
    (entry,) = json.loads(record.read_text())["evaluations"]
    assert entry["recall"]["successes"] == 0 and entry["keep_rate"]["successes"] == 2
    assert entry["missed"] == ["pkg:pkg/pink.jpg", "pkg:pkg/red.jpg"]


def test_training_splits_and_models_that_do_not_name_theirs_are_refused_before_scoring(photo_dir, tmp_path,
                                                                                      capsys, no_scoring):
    record = tmp_path / "r.json"
    for split in ("heldout2", "tuning", "all"):
        assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record, split) == 2
    printed = capsys.readouterr().err
    assert "fitted on heldout2: a figure there is a training score" in printed
    assert "needs one held-out split, not 'tuning'" in printed and "not 'all'" in printed
    # fit_fusion given `evaluate --split all` scores writes "all split of ...": every split is a training one
    everything = fusion_file(tmp_path, 0.0, "all.json", "all split of pipeline/photo_sets/labels.csv: 9 images")
    assert evaluate(photo_dir, everything, record, "heldout3") == 2
    assert "fitted on heldout3" in capsys.readouterr().err
    for words in ("", "our own photographs", "heldout9 splits"):  # not fit_fusion's words: nothing is held out
        assert evaluate(photo_dir, fusion_file(tmp_path, 0.0, "hand.json", words), record, "heldout3") == 2
        assert "does not name the splits it was fitted on" in capsys.readouterr().err
    assert main(["evaluate", "--detectors=open_nsfw", "--fusion=none", f"--photos={photo_dir}", "--split=heldout3",
                 f"--record={record}"]) == 2
    assert "needs a fusion model" in capsys.readouterr().err
    assert main(["evaluate", "--detectors=open_nsfw", f"--record={record}"]) == 2  # the builtin set: no split
    said = "--record names what to score of the package photographs: give --photos too"
    assert said in capsys.readouterr().err and not record.exists()


@pytest.mark.parametrize(("options", "reason"), [
    (["--detectors=open_nsfw,centerface"], "the detectors selected (centerface, open_nsfw) are not the ones"),
    (["--detect_thresholds=open_nsfw.nsfw=0"], "--detect_thresholds overrides a threshold"),
    (["--model_registry=models/candidate_pose_review.json"], "--model_registry changes mediapipe_pose beyond"),
    (["--max_side=256"], "--max_side is 256, not 512"),
    (["--detect_tile_min_side=300"], "--detect_tile_min_side is 300, not 400"),
    (["--resize_reducing_gap=2"], "--resize_reducing_gap is 2.0, neither the default nor 0"),
])
def test_only_the_models_own_decision_is_recorded(photo_dir, tmp_path, capsys, no_scoring, options, reason):
    """A setting the entry does not record must not vary: an extra detector or an overridden threshold
    would file another decision's figure under this model's sha256."""
    record = tmp_path / "r.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record, "heldout3", *options) == 2
    assert reason in capsys.readouterr().err and not record.exists()


def test_a_records_text_holding_terminal_escapes_is_said_in_one_printable_line(photo_dir, tmp_path, capsys,
                                                                               monkeypatch):
    """A held-out record is kept with its model and passed around with it: an entry whose date holds terminal escapes
    (OSC 52, ESC [2J), a line break and a forged line was quoted as it was in evaluate's refusal of the split it
    already records (its escapes sent to the terminal, the forged line a line of its own). Each unprintable character
    is written as Python writes it in a string."""
    model, record = fusion_file(tmp_path, 0.0), tmp_path / "r.json"
    assert evaluate(photo_dir, model, record, "heldout3") == 1
    edited = json.loads(record.read_text())
    edited["evaluations"][0]["date"] = "2026-12-01\x1b]52;c;eA==\x07\x1b[2J\nrecorded in r.json: heldout3"
    record.write_text(json.dumps(edited))
    capsys.readouterr()
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although already recorded"))
    assert evaluate(photo_dir, model, record) == 2
    out = capsys.readouterr().err
    assert out.strip().isprintable() and len(out.strip().splitlines()) == 1, out
    assert "(2026-12-01\\x1b]52;c;eA==\\x07\\x1b[2J\\nrecorded in r.json: heldout3)" in out, out


def test_a_split_is_recorded_once_per_storage_rule(photo_dir, tmp_path, capsys, monkeypatch):
    model, record, scores = fusion_file(tmp_path, 0.0), tmp_path / "r.json", tmp_path / "scores.json"
    assert evaluate(photo_dir, model, record, "heldout3", f"--json={scores}") == 1
    before = record.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although already recorded"))
        assert evaluate(photo_dir, model, record) == 2
    assert "already records heldout3 with images stored the same way (2026-12-01)" in capsys.readouterr().err
    assert record.read_bytes() == before  # untouched
    assert evaluate(photo_dir, model, record, "heldout4") == 1  # another split: added
    # The same split's scores from images stored by the rule before (as heldout4 was re-scored in 2026-12):
    # a second, deliberate entry, with the storage read from the scores' file.
    older = json.loads(scores.read_text())
    for key in ("resize_reducing_gap", "stored_from", "storage_rule_version"):
        del older[key]  # a file from before they were recorded: Lanczos only, decoded first, rule 1
    scores.write_text(json.dumps(older))
    assert evaluate(photo_dir, model, record, "heldout3", f"--scores={scores}") == 1
    entries = json.loads(record.read_text())["evaluations"]
    assert [e["split"] for e in entries] == ["heldout3", "heldout4", "heldout3"]
    assert entries[2]["stored_by"] == "a Lanczos resize only from pixels decoded first (storage rule 1)"
    assert entries[2]["storage"] == {"resize_reducing_gap": 0.0, "stored_from": score.DECODED_FIRST,
                                     "storage_rule_version": 1}
    assert evaluate(photo_dir, model, record, "heldout3", f"--scores={scores}") == 2  # and only once
    # An entry written by hand before `storage` was recorded blocks its split.
    hand = json.loads(record.read_text())
    hand["evaluations"] = [{k: v for k, v in e.items() if k != "storage"} for e in hand["evaluations"][:1]]
    record.write_text(json.dumps(hand))
    capsys.readouterr()
    assert evaluate(photo_dir, model, record, "heldout3", f"--scores={scores}") == 2
    assert "already records heldout3" in capsys.readouterr().err


def test_another_models_record_or_a_malformed_one_is_refused(photo_dir, tmp_path, capsys):
    record = tmp_path / "r.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record) == 1
    written = json.loads(record.read_text())
    other = fusion_file(tmp_path, 1.0, "other.json")
    assert evaluate(photo_dir, other, record, "heldout4") == 2
    assert f"records the fusion model '{read_fusion(str(tmp_path / 'model.json')).sha256}'" in capsys.readouterr().err
    model = fusion_file(tmp_path, 0.0)
    malformed = [b"{not json", b"[]", json.dumps({"fusion_sha256": "x"}).encode(), b"\xff\xfe",
                 json.dumps(written | {"evaluations": [7]}).encode(),
                 json.dumps(written | {"evaluations": [{"date": "2026-12-01"}]}).encode(),
                 json.dumps(written | {"evaluations": [written["evaluations"][0] | {"storage": None}]}).encode()]
    for broken in malformed:
        record.write_bytes(broken)
        assert evaluate(photo_dir, model, record, "heldout4") == 2
        assert "is not a held-out record" in capsys.readouterr().err
        assert record.read_bytes() == broken


def test_the_record_is_replaced_whole_or_not_at_all(photo_dir, tmp_path, monkeypatch, capsys):
    model, record = fusion_file(tmp_path, 0.0), tmp_path / "r.json"
    assert evaluate(photo_dir, model, record) == 1
    os.chmod(record, 0o644)
    before = record.read_bytes()

    def killed(src, dst):
        raise OSError("killed while renaming")

    with monkeypatch.context() as patch:
        patch.setattr(whole_file.os, "replace", killed)
        assert evaluate(photo_dir, model, record, "heldout4") != 0
    assert "killed while renaming" in capsys.readouterr().err
    assert record.read_bytes() == before and sorted(p.name for p in tmp_path.glob(".r.json.*")) == []
    assert evaluate(photo_dir, model, record, "heldout4") == 1
    assert stat.S_IMODE(record.stat().st_mode) == 0o644  # the old file's mode, not mkstemp's 0600
    assert record.read_text(encoding="utf-8").endswith("]\n}\n")


def test_a_split_without_clean_or_human_photos_is_not_recorded(tmp_path):
    model = read_fusion(fusion_file(tmp_path, 0.0))
    storage = score.storage_of(None, 1.0)
    m = heldout_record.Measurement("heldout3", model, storage, ("open_nsfw",))
    result = {"split": "heldout3", "images": 1, "labels": {"person": 1}, "detectors": ["open_nsfw"], "missed": [],
              "combined": {"recall": {"successes": 1, "n": 1}, "keep_rate": {"successes": 0, "n": 0}}}
    with pytest.raises(heldout_record.RecordError, match="nothing to record"):
        heldout_record.append(tmp_path / "r.json", m, result, TODAY)
    assert not (tmp_path / "r.json").exists()


def test_every_shipped_model_names_the_splits_it_was_fitted_on():
    """The guard reads `fitted_on` as fit_fusion writes it; each shipped model's held-out record holds
    only splits outside it."""
    models = BUILTIN_REGISTRY.parent
    names = [p.name for p in sorted(models.glob("fusion*.json")) if not p.name.endswith("_heldout.json")]
    fitted = {name: heldout_record.fitted_splits(read_fusion(str(models / name)))
              for name in [*names, "candidate_trees.json", "candidate_no_centerface.json"]}
    assert fitted["fusion.json"] == {"tuning", *(f"heldout{n}" for n in ("", 2, 3, 4, 5, 6, 7))}
    assert fitted["fusion_v4.json"] == {"tuning", "heldout", "heldout2", "heldout3", "heldout4"}
    assert fitted["fusion_v1.json"] == fitted["fusion_v2.json"] == {"tuning"}
    assert fitted["candidate_trees.json"] == {"tuning", *(f"heldout{n}" for n in ("", 2, 3, 4, 5, 6))}
    assert fitted["candidate_no_centerface.json"] == fitted["fusion.json"]
    recorded = set()
    for name, splits in fitted.items():
        model = read_fusion(str(models / name))
        for path in models.glob("fusion*_heldout.json"):
            record = json.loads(path.read_text())
            if record["fusion_sha256"] == model.sha256:
                assert not splits & {e["split"] for e in record["evaluations"]}, (name, path.name)
                recorded.add(name)
    assert recorded == set(fitted)  # a model no record names (its bytes changed since) would be checked by nothing
    hand = {"features": ["a.face"], "weights": [1], "bias": 0, "reject_at": 1, "review_from": 1}
    assert heldout_record.fitted_splits(parse_fusion(json.dumps(hand).encode(), "hand.json")) is None


def test_the_defaults_record_refuses_heldout8_again_and_the_splits_it_was_fitted_on(tmp_path):
    copy = tmp_path / "fusion_heldout.json"
    shutil.copy(BUILTIN_REGISTRY.parent / "fusion_heldout.json", copy)
    fusion = builtin_fusion()
    specs = select(load_registry(None), "default")
    detectors = tuple(spec.name for spec in specs)
    record = json.loads(copy.read_text())
    heldout8 = next(entry for entry in record["evaluations"] if entry["split"] == "heldout8")
    storage = score.Storage(**heldout8["storage"])  # the rule it was recorded under (a newer rule may record it again)
    for split, reason in (("heldout8", "already records heldout8"), ("heldout7", "fitted on heldout7"),
                          ("tuning", "one held-out split")):
        with pytest.raises(heldout_record.RecordError, match=reason):
            heldout_record.check(copy, heldout_record.Measurement(split, fusion, storage, detectors))


def test_a_model_that_does_not_read_the_nsfw_detector_is_recorded_with_it_selected(tmp_path):
    """A run selects open_nsfw for its own nsfw threshold whether or not the fused score reads it: it must be
    selected (its threshold rejects or holds photos), no other detector may be added, none the model reads
    left out."""
    hand = {"features": ["centerface.face", "nanodet_person.person"], "weights": [1, 1], "bias": 0,
            "reject_at": 0.9, "review_from": 0.5, "fitted_on": "tuning + heldout splits of labels.csv"}
    (tmp_path / "m.json").write_text(json.dumps(hand))
    model = read_fusion(str(tmp_path / "m.json"))
    storage = score.storage_of(None, 1.0)
    allowed = heldout_record.Measurement("heldout8", model, storage, ("centerface", "nanodet_person", "open_nsfw"))
    assert heldout_record.check(tmp_path / "r.json", allowed)[0] is model
    for detectors in (("centerface", "nanodet_person", "open_nsfw", "ssdlite_person"), ("centerface", "open_nsfw"),
                      ("centerface", "nanodet_person", "ssdlite_person"), ("centerface", "nanodet_person")):
        with pytest.raises(heldout_record.RecordError, match=r"without human classes \(open_nsfw\), and nothing else"):
            heldout_record.check(tmp_path / "r.json",
                                 heldout_record.Measurement("heldout8", model, storage, detectors))


@pytest.mark.parametrize("which", ["--json", "--record"])
def test_a_stop_right_after_a_file_is_renamed_into_place_says_it_was_written(photo_dir, tmp_path, monkeypatch, which):
    """The rename is the commit point (io/whole_file.py): a stop landing after it (the folder's fsync) said the record
    or the --json file "not written (as it was)" though it held the new one."""
    model, record, result = fusion_file(tmp_path, 0.0), tmp_path / "r.json", tmp_path / "result.json"
    target = record if which == "--record" else result
    real = whole_file._sync_folder

    def stopped(folder):
        real(folder)
        if (target.parent / target.name).exists() and not list(target.parent.glob(f".{target.name}.*")):
            raise KeyboardInterrupt

    monkeypatch.setattr(whole_file, "_sync_folder", stopped)
    with pytest.raises(KeyboardInterrupt) as stop:
        evaluate(photo_dir, model, record, "heldout3", f"--json={result}")
    said = stop.value.aftermath
    assert f"{which} {target} written" in said and f"{which} {target} not written" not in said, said
    assert json.loads(target.read_text())


def test_a_record_that_is_a_named_pipe_is_refused_in_one_line_not_waited_on(photo_dir, tmp_path, capsys):
    """Read as text, a named pipe under the record's name waited for a writer that does not come, for good."""
    import threading

    record = tmp_path / "r.json"
    os.mkfifo(record)
    done = threading.Event()

    def rescue():  # a hung read gets an end after 20 s, so that the test fails rather than hangs
        if not done.wait(20):
            with open(record, "wb") as writer:
                writer.write(b"{}")

    threading.Thread(target=rescue, daemon=True).start()
    try:
        assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record) == 2
    finally:
        done.set()
    out = capsys.readouterr().err
    assert f"error: not recorded: {record} is not a held-out record: {record} is no regular file" in out, out
    assert stat.S_ISFIFO(os.stat(record).st_mode)



@pytest.mark.parametrize("leads", ["shared/model_heldout.json", "nowhere/model_heldout.json"])
def test_a_record_that_is_a_symbolic_link_is_refused_before_scoring_not_replaced(photo_dir, tmp_path, capsys,
                                                                                   monkeypatch, leads):
    """A --record that is a symbolic link (to the record kept with the model) was read through the link, and the
    record with the new measurement then written under the link's own name: the link replaced by a file, the record
    it led to without the measurement, which the command said was recorded; one leading nowhere became a new record in
    its place. Refused before scoring in one line naming where it leads, exit 2, the link and its record as they
    were."""
    model = fusion_file(tmp_path, 20.0)
    (tmp_path / "shared").mkdir()
    shared = tmp_path / "shared" / "model_heldout.json"
    assert evaluate(photo_dir, model, shared, "heldout3") == 0
    kept = shared.read_text()
    record = tmp_path / "model_heldout.json"
    record.symlink_to(leads)
    capsys.readouterr()
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    assert evaluate(photo_dir, model, record, "heldout4") == 2
    out = capsys.readouterr().err
    assert out.startswith(f"pass-pipeline: error: not recorded: {record} is a symbolic link (to {leads})"), out
    assert out.count("\n") == 1 and os.readlink(record) == leads and shared.read_text() == kept, out
