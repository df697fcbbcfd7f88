"""docs/measurements/class_columns.py: its measurement needs the spent splits' photographs (not tested), but an output
folder or file it may not write is refused before the scoring, as the fit scripts refuse theirs (`check_output`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from pipeline.photo_sets.fetch import Row
from tests.test_photo_sets_fit_probe import DATASET_SAID, LINK_SAID

MEASUREMENTS = Path(__file__).parent.parent / "docs" / "measurements"
PHOTOS = Path(__file__).parent / "photos"


def tuning(tmp_path: Path) -> tuple[Path, list[Row]]:
    """Two of the project's own photographs stored under their sha256 as fetch stores them, as the tuning split's
    rows."""
    photos, rows = tmp_path / "photos", []
    photos.mkdir()
    for name, label in (("tiny_tourists_at_pisa.jpg", "tiny_person"), ("macaque.jpg", "no_person")):
        data = (PHOTOS / name).read_bytes()
        row = Row("tests", "1", "local", f"photos/{name}", hashlib.sha256(data).hexdigest(), 1, 1, label, "",
                  "tuning", "")
        shutil.copyfile(PHOTOS / name, photos / row.file_name)
        rows.append(row)
    return photos, rows


def measurement(name: str) -> ModuleType:
    """The script docs/measurements/NAME.py as a module (the folder is no package: its scripts are run by path)."""
    spec = importlib.util.spec_from_file_location(f"measurements_{name}", MEASUREMENTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def a_dataset(tmp_path: Path) -> Path:
    """A folder holding a dataset's manifest."""
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.json").write_text('{"files": []}\n')
    return tmp_path / "dataset"


def tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Each path under `folder`: its mode and, for a file, its bytes (a link's own mode: it is not followed)."""
    return {str(path): (path.lstat().st_mode, path.read_bytes() if path.is_file() and not path.is_symlink() else b"")
            for path in folder.rglob("*") if not stat.S_ISFIFO(path.lstat().st_mode)}


def refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], script: ModuleType,
            argv: list[str]) -> str:
    """What `script` says, running as `python docs/measurements/NAME.py ARGV`, where it ends with exit 2 (argparse's
    usage line and then the error: the last line of stderr, returned)."""
    monkeypatch.setattr(sys, "argv", [str(MEASUREMENTS / Path(script.__file__ or "").name), *argv])
    with pytest.raises(SystemExit) as ended:
        script.main()
    assert ended.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


# What the output is made into, and what class_columns.py says of it: `{tmp}` the test's folder.
NO_OUTPUTS = {
    "a split's file a link": "out {tmp}/out/heldout2.json " + LINK_SAID.format(to="{tmp}/kept.json"),
    "a split's file a folder": "out {tmp}/out/tuning.json is a folder, not a file: not written",
    "out a file": "out {tmp}/out/tuning.json: {tmp}/out is a file, not a folder: not written",
    "out in a dataset": "out {tmp}/dataset/out/tuning.json " + DATASET_SAID,
}


def planted_output(tmp_path: Path, case: str, suffix: str) -> Path:
    """A measurement script's OUT folder under `tmp_path` made into `case` (a row of a NO_OUTPUTS table): a split's
    file a link (heldout2's, to a kept earlier file), a folder or a named pipe (tuning's), `out a file`, or else OUT
    inside a dataset's folder. Split files end in `suffix`."""
    out, kept = tmp_path / "out", tmp_path / f"kept{suffix}"
    kept.write_bytes(b"an earlier file\n")
    if case.endswith(" a link"):
        out.mkdir()
        (out / f"heldout2{suffix}").symlink_to(kept)
    elif case.endswith(" a folder"):
        (out / f"tuning{suffix}").mkdir(parents=True)
    elif case.endswith(" a named pipe"):
        out.mkdir()
        os.mkfifo(out / f"tuning{suffix}")
    elif case == "out a file":
        out.write_text("a file\n")
    else:
        out = a_dataset(tmp_path) / "out"
    return out


def a_split_s_output_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             name: str, case: str, *options: str) -> None:
    """Runs docs/measurements/NAME.py PHOTOS SCORES OUT --splits=tuning,heldout2 OPTIONS with OUT made into `case` (of
    NO_OUTPUTS) and checks it is refused before the detectors load, in that one line, exit 2, nothing written."""
    script = measurement(name)
    out = planted_output(tmp_path, case, ".json")
    before = tree(tmp_path)
    monkeypatch.setattr(script, "load_registry", lambda *a, **k: pytest.fail("scored although refused"))
    said = refused(monkeypatch, capsys, script, [str(tmp_path / "photos"), str(tmp_path / "scores"), str(out),
                                                 "--splits=tuning,heldout2", *options])
    assert said == f"{name}.py: error: {NO_OUTPUTS[case].format(tmp=tmp_path)}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", NO_OUTPUTS)
def test_an_output_it_may_not_write_is_refused_before_the_scoring(tmp_path, monkeypatch, capsys, case):
    """Each split's file was written with write_text after its photographs were scored (minutes): a folder, or a file
    where the output folder goes, a traceback then; a link written through, into the file it leads to; a file in a
    dataset's folder one that made verify refuse the dataset. Each is refused before the detectors load, in one line
    naming the argument, exit 2, nothing written."""
    a_split_s_output_refused(tmp_path, monkeypatch, capsys, "class_columns", case)


def scores_folder(tmp_path: Path, rows: list[Row], split: str = "tuning", **scores: float) -> Path:
    """SCORES/SPLIT.json as `evaluate --json` writes it, each photograph given `scores`."""
    folder = tmp_path / "scores"
    folder.mkdir(exist_ok=True)
    result = {"split": split, "scores": {f"{row.package}:{row.member_path}": dict(scores) for row in rows}}
    (folder / f"{split}.json").write_text(json.dumps(result))
    return folder


def _stand_in_columns(monkeypatch: pytest.MonkeyPatch, script: ModuleType, then: object = None) -> None:
    """Every NanoDet column 0.25 and every OIDv4 column 0.75 (its registered person scores too), no model loaded;
    `then()` after each call."""
    def columns(spec, session, jpeg, tile_min_side):
        if callable(then):
            then()
        return np.full(80, 0.25) if spec.name == "nanodet_person" else np.full(24, 0.75)

    monkeypatch.setattr(script, "shared_session", lambda spec, runtime: None)
    monkeypatch.setattr(script, "columns", columns)


def test_each_split_s_file_is_written_whole_with_the_added_keys(tmp_path, monkeypatch, capsys):
    """Written whole (write_whole, as the fit scripts write theirs), the file write_text wrote in place before: the
    scores file with every column and the grouped features added."""
    script = measurement("class_columns")
    photos, rows = tuning(tmp_path)
    scores = scores_folder(tmp_path, rows, **{"nanodet_person.person": 0.25, "oidv4_person.person": 0.75})
    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    _stand_in_columns(monkeypatch, script)
    monkeypatch.setattr(sys, "argv", ["class_columns.py", str(photos), str(scores), str(tmp_path / "out"),
                                      "--splits=tuning"])
    script.main()
    assert capsys.readouterr().out == "tuning 2\n"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["tuning.json"]  # no temporary beside it
    made = json.loads((tmp_path / "out" / "tuning.json").read_text())
    added = made["scores"]["tests:photos/macaque.jpg"]
    assert len(added) == 2 + 80 + 24 + 6 and added["nanodet_all.c79"] == 0.25 and added["oidv4_all.c23"] == 0.75
    assert added["cols.not_animal"] == 0.25 and added["cols.oid_person_640_or_512"] == 0.75


def test_an_output_made_a_link_while_the_splits_are_scored_is_one_line_and_the_file_it_leads_to_is_left(
        tmp_path, monkeypatch):
    """Checked before the work, a split's file may still become a link during it: write_text wrote through the link,
    into the file it leads to. It is one line naming it, exit 1, the file it leads to as it was."""
    script = measurement("class_columns")
    photos, rows = tuning(tmp_path)
    scores = scores_folder(tmp_path, rows, **{"nanodet_person.person": 0.25, "oidv4_person.person": 0.75})
    out = tmp_path / "out"
    (tmp_path / "kept.json").write_text('{"an": "earlier file"}\n')

    def a_link() -> None:
        if not (out / "tuning.json").is_symlink():
            (out / "tuning.json").symlink_to(tmp_path / "kept.json")

    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    _stand_in_columns(monkeypatch, script, then=a_link)
    monkeypatch.setattr(sys, "argv", ["class_columns.py", str(photos), str(scores), str(out), "--splits=tuning"])
    with pytest.raises(SystemExit) as ended:
        script.main()
    assert str(ended.value.code) == (f"class_columns.py: {out}/tuning.json "
                                     + LINK_SAID.format(to=tmp_path / "kept.json"))
    assert (tmp_path / "kept.json").read_text() == '{"an": "earlier file"}\n'


def test_an_output_named_with_a_line_break_and_terminal_escapes_is_refused_in_one_escaped_line(
        tmp_path, monkeypatch, capsys):
    """The refusal quotes the output's path, which was printed as it came: a folder named with ESC [2J and a line
    break cleared the terminal and printed a forged line of its own. Each unprintable character is written as Python
    writes it in a string, the refusal one line."""
    script = measurement("class_columns")
    out = tmp_path / "out\nclass_columns.py: OK\x1b[2J"
    (out / "tuning.json").mkdir(parents=True)
    monkeypatch.setattr(script, "load_registry", lambda *a, **k: pytest.fail("scored although refused"))
    monkeypatch.setattr(sys, "argv", ["class_columns.py", str(tmp_path / "photos"), str(tmp_path / "scores"),
                                      str(out), "--splits=tuning"])
    with pytest.raises(SystemExit) as ended:
        script.main()
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\nclass_columns.py: OK" not in err
    assert err.endswith(f"\nclass_columns.py: error: out {tmp_path}/out\\nclass_columns.py: OK\\x1b[2J/tuning.json "
                        "is a folder, not a file: not written\n")
