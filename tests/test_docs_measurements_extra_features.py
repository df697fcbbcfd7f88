"""docs/measurements/extra_features.py: its measurement needs the spent splits' photographs (and OpenCV for --haar,
not a dependency: not tested), but an output folder or file it may not write is refused before the scoring, as the
fit scripts refuse theirs (`check_output`)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.test_docs_measurements_class_columns import (
    NO_OUTPUTS,
    a_split_s_output_refused,
    measurement,
    scores_folder,
    tuning,
)
from tests.test_photo_sets_fit_probe import LINK_SAID


@pytest.mark.parametrize("case", NO_OUTPUTS)
@pytest.mark.parametrize("haar", [[], ["--haar"]], ids=["nanodet", "haar"])
def test_an_output_it_may_not_write_is_refused_before_the_scoring(tmp_path, monkeypatch, capsys, case, haar):
    """Each split's file was written with write_text after its photographs were scored (~1.4 s a photo with --haar):
    a folder, or a file where the output folder goes, a traceback then; a link written through, into the file it
    leads to; a file in a dataset's folder one that made verify refuse the dataset. Each is refused before the
    detector loads and OpenCV is imported (with it made unimportable, an import of it would be an ImportError here,
    whether or not it is installed), in one line naming the argument, exit 2, nothing written."""
    monkeypatch.setitem(sys.modules, "cv2", None)
    a_split_s_output_refused(tmp_path, monkeypatch, capsys, "extra_features", case, *haar)


def test_each_split_s_file_is_written_whole_with_the_added_keys(tmp_path, monkeypatch, capsys):
    """Written whole (write_whole, as the fit scripts write theirs), the file write_text wrote in place before: the
    scores file with NanoDet's map features added (the model run on two of the project's photographs)."""
    script = measurement("extra_features")
    photos, rows = tuning(tmp_path)
    scores = scores_folder(tmp_path, rows, **{"centerface.face": 0.5})
    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    monkeypatch.setattr(sys, "argv", ["extra_features.py", str(photos), str(scores), str(tmp_path / "out"),
                                      "--splits=tuning"])
    script.main()
    assert capsys.readouterr().out == "tuning 2\n"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["tuning.json"]  # no temporary beside it
    made = json.loads((tmp_path / "out" / "tuning.json").read_text())["scores"]
    for key in ("tests:photos/tiny_tourists_at_pisa.jpg", "tests:photos/macaque.jpg"):
        assert made[key]["centerface.face"] == 0.5 and 0 <= made[key]["nd.top3"] <= 1
        assert {"nd.top10", "nd.n0.1", "nd.s0_top3", "nd.s2_n"} <= set(made[key])


def test_an_output_made_a_link_while_the_splits_are_scored_is_one_line_and_the_file_it_leads_to_is_left(
        tmp_path, monkeypatch):
    """Checked before the work, a split's file may still become a link during it: write_text wrote through the link,
    into the file it leads to. It is one line naming it, exit 1, the file it leads to as it was."""
    script = measurement("extra_features")
    photos, rows = tuning(tmp_path)
    scores = scores_folder(tmp_path, rows, **{"centerface.face": 0.5})
    out = tmp_path / "out"
    (tmp_path / "kept.json").write_text('{"an": "earlier file"}\n')

    def maps_then_a_link(session, tensor):
        if not (out / "tuning.json").is_symlink():
            (out / "tuning.json").symlink_to(tmp_path / "kept.json")
        return {"nd.top3": 0.5}

    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    monkeypatch.setattr(script, "shared_session", lambda spec, runtime: None)
    monkeypatch.setattr(script, "nanodet_maps", maps_then_a_link)
    monkeypatch.setattr(sys, "argv", ["extra_features.py", str(photos), str(scores), str(out), "--splits=tuning"])
    with pytest.raises(SystemExit) as ended:
        script.main()
    assert str(ended.value.code) == (f"extra_features.py: {out}/tuning.json "
                                     + LINK_SAID.format(to=tmp_path / "kept.json"))
    assert (tmp_path / "kept.json").read_text() == '{"an": "earlier file"}\n'
