"""pipeline/photo_sets/heldout_record.py and `pass-pipeline evaluate --photos --record=FILE`."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import shutil

import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.detectors.fusion import builtin_fusion, parse_fusion, read_fusion
from pipeline.detectors.registry import BUILTIN_REGISTRY
from pipeline.photo_sets import heldout_record, score
from pipeline.photo_sets.fetch import Row
from pipeline.photo_sets.metrics import wilson
from pipeline.stages.image import STORAGE_RULE_VERSION

FITTED_ON = "tuning + heldout + heldout2 splits of pipeline/photo_sets/labels.csv: 3 images with a human, 2 no_person"


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
    return tmp_path


def fusion_file(tmp_path, bias: float, name: str = "model.json") -> str:
    """A one-feature logistic model over the NSFW score: a large bias rejects every photograph."""
    path = tmp_path / name
    path.write_text(json.dumps({"features": ["open_nsfw.nsfw"], "weights": [1.0], "bias": bias,
                                "reject_at": 0.9, "review_from": 0.5, "fitted_on": FITTED_ON}))
    return str(path)


def evaluate(photo_dir, model: str, record, split: str = "heldout3", *extra: str) -> int:
    return main(["evaluate", "--detectors=open_nsfw", f"--fusion={model}", f"--photos={photo_dir}",
                 f"--split={split}", f"--record={record}", *extra])


def test_a_measurement_is_appended_with_the_figures_evaluate_printed(photo_dir, tmp_path, capsys):
    record = tmp_path / "records" / "model_heldout.json"
    out = tmp_path / "result.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 20.0), record, "heldout3", f"--json={out}") == 0
    assert f"recorded in {record}: heldout3" in capsys.readouterr().out
    result, written = json.loads(out.read_text()), json.loads(record.read_text())
    assert written["fusion_sha256"] == result["fusion"]["sha256"]
    assert "fitted on tuning + heldout" in written["_comment"]
    (entry,) = written["evaluations"]
    assert entry["split"] == "heldout3" and entry["images"] == 5
    assert datetime.date.fromisoformat(entry["date"]) == datetime.datetime.now(datetime.UTC).date()
    assert entry["labels"] == {"depiction": 1, "no_person": 2, "person": 1, "tiny_person": 1}
    assert entry["recall"] == result["combined"]["recall"] and entry["recall"]["successes"] == 2
    assert entry["keep_rate"] == result["combined"]["keep_rate"] and entry["keep_rate"]["successes"] == 0
    assert entry["keep_rate"]["ci95"] == pytest.approx(list(wilson(0, 2)), abs=5e-5)
    assert entry["missed"] == [] and entry["detectors"] == ["open_nsfw"]
    assert entry["storage"] == {"resize_reducing_gap": 1.0, "stored_from": score.STORED_FROM,
                                "storage_rule_version": STORAGE_RULE_VERSION}
    rule = f"--resize_reducing_gap=1, storage rule {STORAGE_RULE_VERSION}"
    assert entry["stored_by"] == f"{rule}, from {score.STORED_FROM}"
    # The datasheet's reader takes the same fields from it.
    assert set(entry) >= {"split", "date", "images", "recall", "keep_rate", "stored_by"}


def test_a_model_that_misses_people_names_them_in_its_entry(photo_dir, tmp_path, capsys):
    record = tmp_path / "keeps_all.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, -20.0), record) == 1  # recall below 100%: exit 1, recorded
    (entry,) = json.loads(record.read_text())["evaluations"]
    assert entry["recall"]["successes"] == 0 and entry["keep_rate"]["successes"] == 2
    assert entry["missed"] == ["pkg:pkg/pink.jpg", "pkg:pkg/red.jpg"]


def test_a_split_the_model_was_fitted_on_is_refused_before_any_detector_runs(photo_dir, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    record = tmp_path / "r.json"
    for split in ("heldout2", "tuning", "all"):
        assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record, split) == 2
    printed = capsys.readouterr().out
    assert "fitted on heldout2: a figure there is a training score" in printed
    assert "needs one held-out split, not 'tuning'" in printed and "not 'all'" in printed
    assert not record.exists()
    assert main(["evaluate", "--detectors=open_nsfw", "--fusion=none", f"--photos={photo_dir}", "--split=heldout3",
                 f"--record={record}"]) == 2
    assert "needs a fusion model" in capsys.readouterr().out
    assert main(["evaluate", "--detectors=open_nsfw", f"--record={record}"]) == 2  # the builtin set: no split
    assert "give --photos and --split" in capsys.readouterr().out and not record.exists()


def test_a_split_is_recorded_once_per_storage_rule(photo_dir, tmp_path, capsys):
    model, record, scores = fusion_file(tmp_path, 0.0), tmp_path / "r.json", tmp_path / "scores.json"
    assert evaluate(photo_dir, model, record, "heldout3", f"--json={scores}") == 1
    before = record.read_bytes()
    assert evaluate(photo_dir, model, record) == 2
    assert "already records heldout3 with images stored the same way" in capsys.readouterr().out
    assert record.read_bytes() == before  # untouched
    assert evaluate(photo_dir, model, record, "heldout4") == 1  # another split: added
    # The same split's scores from images stored by another rule (as heldout4 was re-scored in 2026-12):
    # a second, deliberate entry.
    older = json.loads(scores.read_text()) | {"resize_reducing_gap": 0.0, "storage_rule_version": 1}
    scores.write_text(json.dumps(older))
    assert evaluate(photo_dir, model, record, "heldout3", f"--scores={scores}") == 1
    entries = json.loads(record.read_text())["evaluations"]
    assert [e["split"] for e in entries] == ["heldout3", "heldout4", "heldout3"]
    assert entries[2]["stored_by"] == f"a Lanczos resize only, storage rule 1, from {score.STORED_FROM}"
    # An entry written by hand before `storage` was recorded blocks its split.
    hand = json.loads(record.read_text())
    hand["evaluations"] = [{k: v for k, v in e.items() if k != "storage"} for e in hand["evaluations"][:1]]
    record.write_text(json.dumps(hand))
    assert evaluate(photo_dir, model, record, "heldout3", f"--scores={scores}") == 2
    assert "already records heldout3" in capsys.readouterr().out


def test_another_models_record_or_a_broken_file_is_refused(photo_dir, tmp_path, capsys):
    record = tmp_path / "r.json"
    assert evaluate(photo_dir, fusion_file(tmp_path, 0.0), record) == 1
    other = fusion_file(tmp_path, 1.0, "other.json")
    assert evaluate(photo_dir, other, record, "heldout4") == 2
    assert f"records the fusion model '{read_fusion(str(tmp_path / 'model.json')).sha256}'" in capsys.readouterr().out
    for broken in (b"{not json", b"[]", json.dumps({"fusion_sha256": "x"}).encode(), b"\xff\xfe"):
        record.write_bytes(broken)
        assert evaluate(photo_dir, other, record, "heldout4") == 2
        assert "is not a held-out record" in capsys.readouterr().out
        assert record.read_bytes() == broken


def test_every_shipped_model_names_the_splits_it_was_fitted_on():
    """The guard reads `fitted_on` as fit_fusion writes it; each shipped model's held-out record holds
    only splits outside it, and the default has heldout8 left to be measured on."""
    models = BUILTIN_REGISTRY.parent
    fitted = {path.name: heldout_record.fitted_splits(read_fusion(str(path)))
              for path in sorted(models.glob("fusion*.json")) if not path.name.endswith("_heldout.json")}
    fitted["candidate_trees.json"] = heldout_record.fitted_splits(read_fusion(str(models / "candidate_trees.json")))
    assert fitted["fusion.json"] == {"tuning", "heldout", "heldout2", "heldout3", "heldout4"}
    assert fitted["fusion_v1.json"] == fitted["fusion_v2.json"] == {"tuning"}
    assert fitted["candidate_trees.json"] == {"tuning", *(f"heldout{n}" for n in ("", 2, 3, 4, 5, 6))}
    for name, splits in fitted.items():
        model = read_fusion(str(models / name))
        for path in models.glob("fusion*_heldout.json"):
            record = json.loads(path.read_text())
            if record["fusion_sha256"] == model.sha256:
                assert not splits & {e["split"] for e in record["evaluations"]}, (name, path.name)
    hand = {"features": ["a.face"], "weights": [1], "bias": 0, "reject_at": 1, "review_from": 1}
    assert heldout_record.fitted_splits(parse_fusion(json.dumps(hand).encode(), "hand.json")) == frozenset()
    worded = hand | {"fitted_on": "the photographs of our own shoot"}  # not fit_fusion's words: names none
    assert heldout_record.fitted_splits(parse_fusion(json.dumps(worded).encode(), "hand.json")) == frozenset()


def test_the_defaults_record_takes_heldout8_and_refuses_heldout7_again(tmp_path):
    copy = tmp_path / "fusion_heldout.json"
    shutil.copy(BUILTIN_REGISTRY.parent / "fusion_heldout.json", copy)
    fusion = builtin_fusion()
    assert heldout_record.check(copy, "heldout8", fusion)["fusion_sha256"] == fusion.sha256
    result = {"split": "heldout7", "images": 1, "labels": {"person": 1}, "detectors": ["centerface"],
              "combined": {"recall": {"successes": 1, "n": 1}, "keep_rate": {"successes": 0, "n": 0}},
              "missed": [], "resize_reducing_gap": 1.0, "stored_from": score.STORED_FROM,
              "storage_rule_version": STORAGE_RULE_VERSION}
    with pytest.raises(heldout_record.RecordError, match="already records heldout7"):
        heldout_record.append(copy, result, fusion)
    with pytest.raises(heldout_record.RecordError, match="fitted on heldout4"):
        heldout_record.check(copy, "heldout4", fusion)
