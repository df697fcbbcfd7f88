"""docs/measurements/tiny_head.py: its figures need the spent splits' photographs and MediaPipe (not tested); its
outputs are refused before the work as the fit scripts refuse theirs, and its arithmetic (the cell holding a point,
the pasting, the area under the curve, the heads' weights read back without scikit-learn) is checked here."""

from __future__ import annotations

import io
import json
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from pipeline.photo_sets.metrics import auc
from tests.test_docs_measurements_class_columns import a_dataset, measurement, refused, tree
from tests.test_photo_sets_fit_probe import DATASET_SAID, LINK_SAID

SCRIPT = measurement("tiny_head")


@pytest.mark.parametrize("step", ["build", "fit", "score", "add"])
@pytest.mark.parametrize("case", ["a link", "in a dataset", "a folder"])
def test_an_output_it_may_not_write_is_refused_before_the_work(tmp_path, monkeypatch, capsys, step, case):
    """Each step's output (minutes of NanoDet for build and score) is checked before NanoDet loads: a link, a file in
    a dataset's folder, a folder in its place, each refused in one line naming the argument, exit 2, nothing
    written."""
    (tmp_path / "kept").write_text("an earlier file\n")
    out = tmp_path / "out"
    if case == "a link":
        out.symlink_to(tmp_path / "kept")
        said = f"out {out} " + LINK_SAID.format(to=tmp_path / "kept")
    elif case == "in a dataset":
        out = a_dataset(tmp_path) / "out"
        said = f"out {out} " + DATASET_SAID.format(tmp=tmp_path)
    else:
        out.mkdir()
        said = f"out {out} is a folder, not a file: not written"
    before = tree(tmp_path)
    monkeypatch.setattr(SCRIPT, "NanoDet", lambda: pytest.fail("worked although refused"))
    monkeypatch.setattr(SCRIPT, "labelled", lambda *a: pytest.fail("worked although refused"))
    arguments = {"build": ["photos", "cut", str(out)], "fit": [str(tmp_path / "kept"), str(out)],
                 "score": ["photos", "head.npz", "heldout7", str(out)],
                 "add": [str(tmp_path / "kept"), str(tmp_path / "kept"), str(out)]}[step]
    assert refused(monkeypatch, capsys, SCRIPT, [step, *arguments]) == f"tiny_head.py: error: {said}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("step", ["export", "cut"])
@pytest.mark.parametrize("case", ["a file", "a link to a file", "a link to nothing", "a file above it", "in a dataset",
                                  "a dataset"])
def test_a_folder_export_or_cut_may_not_write_in_is_refused_before_the_work(tmp_path, monkeypatch, capsys, step,
                                                                           case):
    """export and cut write their PNGs into OUT with no check: a file or a link to none where the folder goes was
    mkdir's traceback (cut's after MediaPipe loaded), a dataset's folder took the PNGs its manifest does not list
    (verify refused the dataset from then on). Each is refused before the work, in one line naming the argument,
    exit 2, nothing written."""
    (tmp_path / "kept").write_text("an earlier file\n")
    out = tmp_path / "out"
    if case == "a file":
        out.write_text("a file\n")
        said = f"out {out} is a file, not a folder: not written"
    elif case == "a link to a file":
        out.symlink_to(tmp_path / "kept")
        said = f"out {out} is a file, not a folder: not written"
    elif case == "a link to nothing":
        out.symlink_to(tmp_path / "gone")
        said = f"out {out} is a link to nothing, not a folder: not written"
    elif case == "a file above it":
        out = tmp_path / "kept" / "out"
        said = f"out {out}: {tmp_path / 'kept'} is a file, not a folder: not written"
    else:
        out = a_dataset(tmp_path) / ("out" if case == "in a dataset" else "")
        said = f"out {out}: what is written in it " + DATASET_SAID.format(tmp=tmp_path)
    before = tree(tmp_path)
    monkeypatch.setattr(SCRIPT, step, lambda args: pytest.fail("worked although refused"))
    said_now = refused(monkeypatch, capsys, SCRIPT, [step, str(tmp_path / "in"), str(out)])
    assert said_now == f"tiny_head.py: error: {said}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("step", ["export", "cut"])
def test_export_and_cut_write_in_a_folder_there_or_one_they_make(tmp_path, monkeypatch, step):
    worked: list[object] = []
    monkeypatch.setattr(SCRIPT, step, lambda args: worked.append(args.out))
    (tmp_path / "there").mkdir()
    for out in (tmp_path / "there", tmp_path / "new" / "deeper"):
        SCRIPT.main([step, str(tmp_path / "in"), str(out)])
    assert worked == [tmp_path / "there", tmp_path / "new" / "deeper"]


sides = st.integers(min_value=8, max_value=600)


@given(left=st.integers(0, 300), top=st.integers(0, 300), width=sides, height=sides, data=st.data())
def test_the_cell_of_a_point_is_the_one_whose_pixels_hold_it_once_the_view_is_stretched(left, top, width, height,
                                                                                         data):
    """Against the brute force: of the 52 x 52 cells of 8 x 8 model pixels, the one whose span, mapped back onto the
    view's box, holds the point (a point of the box in 64ths of a pixel, which floats hold exactly)."""
    box = (left, top, left + width, top + height)
    x = left + data.draw(st.integers(0, 64 * width - 1)) / 64
    y = top + data.draw(st.integers(0, 64 * height - 1)) / 64
    # The brute force in exact fractions; a point on a cell's edge (where float rounding may pick either side) is
    # left out.
    dx, dy = Fraction(x) - left, Fraction(y) - top
    rows = [row for row in range(52) if row * 8 * Fraction(height, 416) <= dy < (row + 1) * 8 * Fraction(height, 416)]
    columns = [column for column in range(52)
               if column * 8 * Fraction(width, 416) <= dx < (column + 1) * 8 * Fraction(width, 416)]
    assume((dy * 52 / height).denominator != 1 and (dx * 52 / width).denominator != 1)
    assert len(rows) == len(columns) == 1 and SCRIPT.cell(box, x, y) == (rows[0], columns[0])
    assert SCRIPT.cell(box, left - 0.5, y) is None and SCRIPT.cell(box, x, top + height) is None


@pytest.mark.parametrize("height", [5, 12, 20])
def test_a_cut_out_is_pasted_at_the_height_asked_below_the_top_quarter_around_the_centre_returned(height):
    cutout = Image.new("RGBA", (40, 100), (255, 255, 255, 255))
    image = Image.new("RGB", (512, 340))
    x, y = SCRIPT.paste(image, cutout, height, random.Random(height))
    rows, columns = np.nonzero(np.asarray(image)[..., 0])
    assert rows.max() - rows.min() + 1 == height and rows.min() >= 340 // 4
    assert (rows.min() + rows.max() + 1) / 2 == pytest.approx(y, abs=0.5)
    assert (columns.min() + columns.max() + 1) / 2 == pytest.approx(x, abs=0.5)


def test_the_heads_read_back_from_their_arrays_give_scikit_learn_s_probabilities(tmp_path):
    """`fit` keeps the heads as arrays (no pickle) and `score` applies them with numpy: equal to the fitted models'
    own predict_proba, and they tell the two classes of their training data apart."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    positive, negative = rng.normal(1.0, 1.0, (60, 128)), rng.normal(0.0, 1.0, (400, 128))
    out = io.BytesIO()
    np.savez(out, positive=positive, negative=negative)
    (tmp_path / "train.npz").write_bytes(out.getvalue())
    SCRIPT.main(["fit", str(tmp_path / "train.npz"), str(tmp_path / "head.npz")])
    with np.load(tmp_path / "head.npz", allow_pickle=False) as stored:
        head = {name: stored[name] for name in stored.files}
    x = np.concatenate([positive, negative])
    y = np.r_[np.ones(60), np.zeros(400)]
    scaled = StandardScaler().fit(x).transform(x)
    models = {"logreg": LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(scaled, y),
              "mlp": MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=200, random_state=0,
                                   early_stopping=True).fit(scaled, y)}
    for kind, model in models.items():
        probabilities = SCRIPT.head_probabilities(head, kind, x)
        np.testing.assert_allclose(probabilities, model.predict_proba(scaled)[:, 1], rtol=1e-6, atol=1e-9)
        assert auc(list(probabilities[:60]), list(probabilities[60:])) > 0.95


def test_the_report_counts_tiny_people_above_the_value_keeping_90_percent_of_clean_photos(tmp_path, capsys):
    """Ten clean photographs scored 0.0-0.9: 0.8 keeps nine; of the tiny people scored 0.85, 0.95, 0.5 and 0.8 (at
    the value, not above it: not caught), two are above it under every score but NanoDet's on the whole image, which
    catches only the 0.95 one."""
    photos = {f"c{i}": {"label": "no_person", **dict.fromkeys(SCRIPT.SCORES, i / 10)} for i in range(10)}
    for name, value in (("t1", 0.85), ("t2", 0.95), ("t3", 0.5), ("t4", 8 / 10)):
        photos[name] = {"label": "tiny_person", **dict.fromkeys(SCRIPT.SCORES, value), "nanodet_whole": 0.5}
    photos["t2"]["nanodet_whole"] = 0.95
    (tmp_path / "s.json").write_text(json.dumps({"photos": photos}))
    SCRIPT.main(["report", str(tmp_path / "s.json")])
    lines = {line.split(" | ")[2]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["nanodet_whole"].endswith("| 1 (0) |")
    assert lines["mlp_views"].endswith("| 2 (1) |")


def test_add_puts_each_photograph_s_scores_beside_its_detectors_in_the_evaluate_file(tmp_path):
    evaluated = {"split": "heldout7", "scores": {"pkg:a.jpg": {"nanodet_person.person": 0.2},
                                                 "pkg:b:c.jpg": {"nanodet_person.person": 0.7}}}
    scored = {"split": "heldout7", "composites": False,
              "photos": {"pkg:a.jpg:tiny_person": {"label": "tiny_person", **dict.fromkeys(SCRIPT.SCORES, 0.4)},
                         "pkg:b:c.jpg:no_person": {"label": "no_person", **dict.fromkeys(SCRIPT.SCORES, 0.1)}}}
    (tmp_path / "e.json").write_text(json.dumps(evaluated))
    (tmp_path / "s.json").write_text(json.dumps(scored))
    SCRIPT.main(["add", str(tmp_path / "e.json"), str(tmp_path / "s.json"), str(tmp_path / "out" / "heldout7.json")])
    added = json.loads((tmp_path / "out" / "heldout7.json").read_text())
    assert added["split"] == "heldout7"
    assert added["scores"]["pkg:a.jpg"] == {"nanodet_person.person": 0.2,
                                            **{f"tiny_head.{key}": 0.4 for key in SCRIPT.SCORES}}
    assert added["scores"]["pkg:b:c.jpg"]["tiny_head.mlp_views"] == 0.1


@pytest.mark.parametrize("case", ["composites", "another split", "not evaluate's"])
def test_add_refuses_a_scored_file_it_cannot_add_in_one_line_writing_nothing(tmp_path, monkeypatch, capsys, case):
    """`score --composites` names each clean photograph twice (`...:no_person`, and `...:tiny_person` for its copy
    with a cut-out pasted): `add` gave the clean photograph of the evaluate file the pasted copy's scores, unsaid.
    A scored file of another split was a KeyError traceback (or, for a package in both splits, the other split's
    scores), an evaluate file that is not one a KeyError or TypeError traceback. Each is one line naming the
    argument, exit 2, nothing written."""
    evaluated = {"split": "heldout7", "scores": {"pkg:a.jpg": {"nanodet_person.person": 0.2}}}
    scored = {"split": "heldout7", "composites": False, "photos": {
        "pkg:a.jpg:no_person": {"label": "no_person", **dict.fromkeys(SCRIPT.SCORES, 0.1)}}}
    if case == "composites":
        scored["composites"] = True
        scored["photos"]["pkg:a.jpg:tiny_person"] = {"label": "tiny_person", **dict.fromkeys(SCRIPT.SCORES, 0.9)}
        said = f"scored {tmp_path / 's.json'} holds score --composites' values (a pasted copy of each clean " \
               "photograph under its name): give score's file of the split without --composites"
    elif case == "another split":
        scored["split"] = "heldout9"
        said = f"scored {tmp_path / 's.json'} scores heldout9, not heldout7 as {tmp_path / 'e.json'} does"
    else:
        evaluated = {"split": "heldout7", "photos": {}}
        said = f"scores file {tmp_path / 'e.json'}: not what `pass-pipeline evaluate --json` writes (an object with " \
               "a split and its scores)"
    (tmp_path / "e.json").write_text(json.dumps(evaluated))
    (tmp_path / "s.json").write_text(json.dumps(scored))
    before = tree(tmp_path)
    assert refused(monkeypatch, capsys, SCRIPT, ["add", str(tmp_path / "e.json"), str(tmp_path / "s.json"),
                                                 str(tmp_path / "out.json")]) == f"tiny_head.py: error: {said}"
    assert tree(tmp_path) == before


def test_an_output_made_a_link_while_a_step_works_is_one_line_and_the_file_it_leads_to_is_left(tmp_path, monkeypatch):
    """Checked before the work, a step's output may still become a link during it: write_whole refuses it at the
    write, which was a traceback (TargetNotAFile) after the minutes of NanoDet. It is one line naming it, exit 1, as
    the other scripts' is, the file it leads to as it was."""
    (tmp_path / "kept").write_text("an earlier file\n")
    np.savez(tmp_path / "head.npz", mean=np.zeros(1))
    out = tmp_path / "out.json"

    def none_then_a_link(*args: object) -> list[object]:
        out.symlink_to(tmp_path / "kept")
        return []

    monkeypatch.setattr(SCRIPT, "NanoDet", lambda: None)
    monkeypatch.setattr(SCRIPT, "labelled", none_then_a_link)
    monkeypatch.setattr("sys.argv", ["tiny_head.py"])
    with pytest.raises(SystemExit) as ended:
        SCRIPT.main(["score", str(tmp_path), str(tmp_path / "head.npz"), "heldout7", str(out)])
    assert str(ended.value.code) == f"tiny_head.py: {out} " + LINK_SAID.format(to=tmp_path / "kept")
    assert (tmp_path / "kept").read_text() == "an earlier file\n"


def test_add_s_refusal_quoting_the_scored_file_s_split_is_one_escaped_line(tmp_path, monkeypatch, capsys):
    """The refusal of another split's scores quotes the split the file holds (outside text), which was printed as it
    came: terminal escapes reached the terminal, a line break printed a forged line of its own. It is one line, each
    unprintable character written as Python writes it in a string."""
    (tmp_path / "e.json").write_text(json.dumps({"split": "heldout7", "scores": {}}))
    (tmp_path / "s.json").write_text(json.dumps({"split": "x\x1b[2J\ntiny_head.py: OK", "composites": False,
                                                 "photos": {}}))
    before = tree(tmp_path)
    monkeypatch.setattr("sys.argv", ["tiny_head.py"])
    with pytest.raises(SystemExit) as ended:
        SCRIPT.main(["add", str(tmp_path / "e.json"), str(tmp_path / "s.json"), str(tmp_path / "out.json")])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\ntiny_head.py: OK" not in err
    assert err.endswith(f"\ntiny_head.py: error: scored {tmp_path / 's.json'} scores x\\x1b[2J\\ntiny_head.py: OK, "
                        f"not heldout7 as {tmp_path / 'e.json'} does\n")
    assert tree(tmp_path) == before
