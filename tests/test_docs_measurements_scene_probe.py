"""docs/measurements/scene_probe.py: its measurement needs the spent splits' photographs (not tested), but `embed`'s
output folder or a file in it that it may not write is refused before anything loads, as the fit scripts refuse
theirs (`check_output`)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.photo_sets.fetch import Row
from tests.test_docs_measurements_class_columns import measurement, planted_output, refused, tree, tuning
from tests.test_photo_sets_fit_probe import DATASET_SAID, LINK_SAID

# What the output is made into, and what `embed` says of it: `{tmp}` the test's folder.
NO_OUTPUTS = {
    "a split's features a link": "out {tmp}/out/heldout2.npz " + LINK_SAID.format(to="{tmp}/kept.npz"),
    "a split's features a folder": "out {tmp}/out/tuning.npz is a folder, not a file: not written",
    "a split's features a named pipe": "out {tmp}/out/tuning.npz is a named pipe, not a file: not written",
    "out a file": "out {tmp}/out/tuning.npz: {tmp}/out is a file, not a folder: not written",
    "out in a dataset": "out {tmp}/dataset/out/tuning.npz " + DATASET_SAID,
}


@pytest.mark.parametrize("case", NO_OUTPUTS)
def test_an_output_embed_may_not_write_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys, case):
    """Each split's features were written with np.savez once its photographs passed through open_nsfw (minutes): a
    folder, or a file where the output folder goes, a traceback then; a link written through, into the file it leads
    to; a file in a dataset's folder one that made verify refuse the dataset. Each is refused before the model loads,
    in one line naming the argument, exit 2, nothing written."""
    script = measurement("scene_probe")
    out = planted_output(tmp_path, case, ".npz")
    before = tree(tmp_path)
    monkeypatch.setattr(script, "embed", lambda *a, **k: pytest.fail("embedded although refused"))
    said = refused(monkeypatch, capsys, script, ["embed", str(tmp_path / "photos"), str(out),
                                                 "--splits=tuning,heldout2"])
    assert said == f"scene_probe.py embed: error: {NO_OUTPUTS[case].format(tmp=tmp_path)}"
    assert tree(tmp_path) == before


def test_embed_writes_each_split_s_features_whole(tmp_path, monkeypatch, capsys):
    """Written whole (write_whole, as fit_probe's features cache), the file np.savez wrote in place before: each
    photograph's key, its pooled and its maximum features, 1,024 each."""
    script = measurement("scene_probe")
    photos, rows = tuning(tmp_path)
    monkeypatch.setattr(script, "load_rows", lambda split: rows)
    monkeypatch.setattr("sys.argv", ["scene_probe.py", "embed", str(photos), str(tmp_path / "out"), "--splits=tuning"])
    script.main()
    assert capsys.readouterr().out == "tuning: 2 photographs\n"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["tuning.npz"]  # no temporary beside it
    with np.load(tmp_path / "out" / "tuning.npz") as made:
        assert list(made["keys"]) == ["tests:photos/tiny_tourists_at_pisa.jpg", "tests:photos/macaque.jpg"]
        assert made["pooled"].shape == made["smax"].shape == (2, 1024)
        assert (made["smax"] >= made["pooled"]).all()  # a maximum over the positions is at least their average


def test_an_output_made_a_link_while_embed_works_is_one_line_and_the_file_it_leads_to_is_left(tmp_path, monkeypatch):
    """Checked before the work, the output may still become a link during it: np.savez wrote through the link, into
    the file it leads to. It is one line naming it, exit 1, the file it leads to as it was."""
    script = measurement("scene_probe")
    photos, rows = tuning(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "kept.npz").write_bytes(b"an earlier file\n")

    def rows_then_a_link(split: str) -> list[Row]:  # embed has made the folder
        (out / "tuning.npz").symlink_to(tmp_path / "kept.npz")
        return rows

    monkeypatch.setattr(script, "load_rows", rows_then_a_link)
    monkeypatch.setattr("sys.argv", ["scene_probe.py", "embed", str(photos), str(out), "--splits=tuning"])
    with pytest.raises(SystemExit) as ended:
        script.main()
    assert str(ended.value.code) == (f"scene_probe.py embed: {out}/tuning.npz "
                                     + LINK_SAID.format(to=tmp_path / "kept.npz"))
    assert (tmp_path / "kept.npz").read_bytes() == b"an earlier file\n"
