"""docs/measurements/yolov4_tiny.py: its measurement needs OpenCV (not a dependency), darknet's files and the spent
splits' photographs (not tested), but `add`'s output folder or a file in it that it may not write is refused before
anything loads, as the fit scripts refuse theirs (`check_output`), and `report`'s row of a split without clean
photographs says so."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from pipeline.photo_sets.fetch import Row
from tests.test_docs_measurements_class_columns import a_dataset, measurement, refused, scores_folder, tree, tuning
from tests.test_photo_sets_fit_probe import DATASET_SAID, LINK_SAID

# What the output is made into, and what `add` says of it: `{tmp}` the test's folder.
NO_OUTPUTS = {
    "a split's features a link": "out {tmp}/out/features/heldout2.json " + LINK_SAID.format(to="{tmp}/kept.json"),
    "the cpu seconds a folder": "out {tmp}/out/features/cpu.json is a folder, not a file: not written",
    "the cpu seconds a named pipe": "out {tmp}/out/features/cpu.json is a named pipe, not a file: not written",
    "a split's scores file a folder": "out {tmp}/out/tuning.json is a folder, not a file: not written",
    "features a file": "out {tmp}/out/features/cpu.json: {tmp}/out/features is a file, not a folder: not written",
    "out in a dataset": "out {tmp}/dataset/out/features/cpu.json " + DATASET_SAID,
}


@pytest.mark.parametrize("case", NO_OUTPUTS)
def test_an_output_add_may_not_write_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys, case):
    """OUT/features/SPLIT.json, OUT/features/cpu.json and OUT/SPLIT.json were written with write_text once a split's
    photographs were scored (minutes): a folder, or a file where features/ goes, a traceback then; a link written
    through, into the file it leads to; a named pipe where cpu.json goes blocked its read for good; a file in a
    dataset's folder one that made verify refuse the dataset. Each is refused before the model loads (OpenCV is not
    even imported), in one line naming the argument, exit 2, nothing written."""
    script = measurement("yolov4_tiny")
    out, scores = tmp_path / "out", tmp_path / "scores"
    scores.mkdir()
    (scores / "tuning.json").write_text('{"scores": {}}\n')
    (tmp_path / "kept.json").write_text('{"an": "earlier file"}\n')
    if case == "a split's features a link":
        (out / "features").mkdir(parents=True)
        (out / "features" / "heldout2.json").symlink_to(tmp_path / "kept.json")
    elif case == "the cpu seconds a folder":
        (out / "features" / "cpu.json").mkdir(parents=True)
    elif case == "the cpu seconds a named pipe":
        (out / "features").mkdir(parents=True)
        os.mkfifo(out / "features" / "cpu.json")
    elif case == "a split's scores file a folder":
        (out / "tuning.json").mkdir(parents=True)
    elif case == "features a file":
        out.mkdir()
        (out / "features").write_text("a file\n")
    else:
        out = a_dataset(tmp_path) / "out"
    before = tree(tmp_path)
    monkeypatch.setattr(script, "add", lambda *a, **k: pytest.fail("added although refused"))
    said = refused(monkeypatch, capsys, script, ["add", str(tmp_path / "photos"), str(scores), str(out),
                                                 "--splits=tuning,heldout2", f"--darknet={tmp_path / 'darknet'}"])
    assert said == f"yolov4_tiny.py add: error: {NO_OUTPUTS[case].format(tmp=tmp_path)}"
    assert tree(tmp_path) == before


def test_a_split_s_file_is_not_refused_where_add_writes_none_for_want_of_its_scores(tmp_path, monkeypatch):
    """OUT/SPLIT.json is written only where SCORES/SPLIT.json is there: what lies in its place otherwise is left
    alone, not refused."""
    script = measurement("yolov4_tiny")
    (tmp_path / "out" / "heldout2.json").mkdir(parents=True)  # heldout2 has no scores file
    (tmp_path / "scores").mkdir()
    added = []
    monkeypatch.setattr(script, "add", added.append)
    monkeypatch.setattr("sys.argv", ["yolov4_tiny.py", "add", str(tmp_path / "photos"), str(tmp_path / "scores"),
                                     str(tmp_path / "out"), "--splits=heldout2", f"--darknet={tmp_path}"])
    script.main()
    assert len(added) == 1


def _stand_in_model(monkeypatch: pytest.MonkeyPatch, script: types.ModuleType, then: object = None) -> list[int]:
    """OpenCV and darknet's model stood in for (neither is here): each photograph's three scores 0.5; `then()` after
    each. The list returned counts the photographs scored."""
    scored: list[int] = []

    def features(net, raw, rgb, cpu):
        scored.append(1)
        if callable(then):
            then()
        return {"yolov4_tiny.p416": 0.5, "yolov4_tiny.x2": 0.5, "yolov4_tiny.t416": 0.5}

    monkeypatch.setitem(sys.modules, "cv2", types.SimpleNamespace(setNumThreads=lambda threads: None))
    monkeypatch.setattr(script, "load_net", lambda folder: (None, []))
    monkeypatch.setattr(script, "yolo_features", features)
    return scored


def _add(monkeypatch: pytest.MonkeyPatch, script: types.ModuleType, photos: Path, scores: Path, out: Path) -> None:
    monkeypatch.setattr("sys.argv", ["yolov4_tiny.py", "add", str(photos), str(scores), str(out), "--splits=tuning",
                                     f"--darknet={photos}"])
    script.main()


def test_add_writes_each_file_whole_and_reads_a_split_s_features_again(tmp_path, monkeypatch, capsys):
    """Written whole (write_whole, as the fit scripts write theirs), the files write_text wrote in place before: the
    split's features, the CPU seconds, the scores file with the keys added; a second `add` reads the features kept."""
    script = measurement("yolov4_tiny")
    photos, rows = tuning(tmp_path)
    scores, out = scores_folder(tmp_path, rows, **{"centerface.face": 0.25}), tmp_path / "out"
    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    scored = _stand_in_model(monkeypatch, script)
    _add(monkeypatch, script, photos, scores, out)
    assert len(scored) == 2 and capsys.readouterr().out.startswith("tuning 2 CPU seconds a photograph so far:")
    # no temporary beside them
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == [
        "features", "features/cpu.json", "features/tuning.json", "tuning.json"]
    assert json.loads((out / "features" / "cpu.json").read_text())["photos"] == 2
    made = json.loads((out / "tuning.json").read_text())["scores"]["tests:photos/macaque.jpg"]
    assert made == {"centerface.face": 0.25, "yolov4_tiny.p416": 0.5, "yolov4_tiny.x2": 0.5, "yolov4_tiny.t416": 0.5}
    (out / "tuning.json").unlink()
    _add(monkeypatch, script, photos, scores, out)
    assert len(scored) == 2 and json.loads((out / "tuning.json").read_text())["scores"]["tests:photos/macaque.jpg"] \
        == made


def test_an_output_made_a_link_while_add_works_is_one_line_and_the_file_it_leads_to_is_left(tmp_path, monkeypatch):
    """Checked before the work, a split's features may still become a link during it: write_text wrote through the
    link, into the file it leads to. It is one line naming it, exit 1, the file it leads to as it was."""
    script = measurement("yolov4_tiny")
    photos, rows = tuning(tmp_path)
    scores, out = scores_folder(tmp_path, rows), tmp_path / "out"
    (tmp_path / "kept.json").write_text('{"an": "earlier file"}\n')

    def a_link() -> None:
        if not (out / "features" / "tuning.json").is_symlink():
            (out / "features" / "tuning.json").symlink_to(tmp_path / "kept.json")

    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    _stand_in_model(monkeypatch, script, then=a_link)
    with pytest.raises(SystemExit) as ended:
        _add(monkeypatch, script, photos, scores, out)
    assert str(ended.value.code) == (f"yolov4_tiny.py add: {out}/features/tuning.json "
                                     + LINK_SAID.format(to=tmp_path / "kept.json"))
    assert (tmp_path / "kept.json").read_text() == '{"an": "earlier file"}\n'


def _report(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, labels: dict[str, list[tuple[str, float]]]) -> None:
    """`report` over splits whose photographs have these (label, yolov4_tiny.x2 score), the default decision stood
    in for (it catches none)."""
    script = measurement("yolov4_tiny")
    rows = {split: [Row("tests", "1", "local", f"{split}/{i}.jpg", f"{i:064x}", 1, 1, label, "", split, "")
                    for i, (label, _) in enumerate(photos)] for split, photos in labels.items()}
    (tmp_path / "out").mkdir()
    for split, photos in labels.items():
        scores = {f"tests:{split}/{i}.jpg": {"yolov4_tiny.x2": value} for i, (_, value) in enumerate(photos)}
        (tmp_path / "out" / f"{split}.json").write_text(json.dumps({"split": split, "scores": scores}))
    monkeypatch.setattr(script, "load_rows", rows.__getitem__)
    kept = types.SimpleNamespace(decision="kept")
    monkeypatch.setattr(script, "rule_for", lambda *a: types.SimpleNamespace(decide=lambda photo: kept))
    monkeypatch.setattr("sys.argv", ["yolov4_tiny.py", "report", str(tmp_path / "out"),
                                     f"--splits={','.join(labels)}", "--keys=yolov4_tiny.x2"])
    script.main()


def test_report_says_so_of_a_split_without_clean_photographs_in_its_row(tmp_path, monkeypatch, capsys):
    """The value keeping 90% (95%) of a split's clean photographs was read from its sorted scores, which for a split
    without any (one of tiny people alone) was an IndexError traceback, the table cut. Its row says there is no clean
    photograph to keep, the other rows as they were: ten clean photographs scored 0.0-0.9, 0.8 keeping nine (90%) and
    0.9 all ten (95%), tiny people at 0.85 and 0.95."""
    clean = [("no_person", i / 10) for i in range(10)]
    _report(monkeypatch, tmp_path, {"tuning": [*clean, ("tiny_person", 0.85), ("tiny_person", 0.95)],
                                    "heldout2": [("tiny_person", 0.5), ("person", 0.9)]})
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| ") and " / " in line}
    assert rows["| tuning"] == ("| tuning | 2 / 10 | 0.950 | nan | 2/2 (2 of 2) | 2/2 (2 of 2) | 1/2 (1 of 2) | "
                                "1/2 (1 of 2) |")
    assert rows["| heldout2"] == ("| heldout2 | 1 / 0 | nan | nan | no clean photograph | no clean photograph | "
                                  "no clean photograph | no clean photograph |")
    assert rows["| all"].startswith("| all | 3 / 10 |")


def test_a_darknet_file_of_another_sha256_is_refused_in_one_escaped_line_before_opencv_loads(tmp_path, monkeypatch):
    """The cfg and weights are checked against the package's sha256 before OpenCV is imported (it is no dependency),
    the path as typed escaped: a folder named with ESC [2J and a line break printed its escape and a forged line."""
    folder = tmp_path / "cfgs\x1b[2J\nyolov4_tiny: OK"
    folder.mkdir()
    for name in ("yolov4-tiny.cfg", "yolov4-tiny.weights"):
        (folder / name).write_bytes(b"not the package's file")
    monkeypatch.setitem(sys.modules, "cv2", None)  # an import of it fails the test
    with pytest.raises(SystemExit) as refused:
        measurement("yolov4_tiny").load_net(folder)
    said = str(refused.value.code)
    assert said.isprintable() and said.startswith(f"{tmp_path}/cfgs\\x1b[2J\\nyolov4_tiny: OK/yolov4-tiny.cfg: sha256 ")
