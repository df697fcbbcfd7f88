import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.detectors.fusion import logit, parse_fusion, sigmoid
from pipeline.photo_sets.fetch import HUMAN_LABELS, load_rows
from pipeline.photo_sets.fit_fusion import choose_thresholds, fit_logistic, main


def test_the_fit_is_at_the_minimum_of_its_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([2.0, -1.0, 0.5]) + rng.normal(size=200) > 0).astype(float)
    w, b = fit_logistic(x, y, l2=0.1)
    # the gradient of the class-balanced, ridge-penalised log loss vanishes there
    a = np.hstack([x, np.ones((200, 1))])
    p = 1 / (1 + np.exp(-(a @ np.append(w, b))))
    sw = np.where(y == 1, 200 / (2 * y.sum()), 200 / (2 * (200 - y.sum())))
    gradient = a.T @ (sw * (p - y)) + np.append(0.2 * w, 0.0)
    assert np.abs(gradient).max() < 1e-6
    assert w[0] > 0 > w[1]  # it found the signs that generated the labels


scores = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@example(humans=[0.5], clean=[1.0], margin=0.5, max_lost=0.0, max_rejected=0.0)  # a clean photo fused at 1.0
@example(humans=[0.3, 0.9], clean=[0.1], margin=0.0, max_lost=0.1, max_rejected=0.0)  # no margin: still mid-gap
@example(humans=[0.25000000000000006], clean=[0.25, 0.0], margin=0.0, max_lost=0.5, max_rejected=0.0)  # no middle
@example(humans=[1.0], clean=[0.0, 0.9999999999999999], margin=0.0, max_lost=0.5, max_rejected=0.0)  # logit clips
@given(humans=scores, clean=scores, margin=st.sampled_from([0.0, 0.5]), max_lost=st.floats(0.0, 0.5),
       max_rejected=st.floats(0.0, 0.2))
def test_thresholds_against_a_brute_force_oracle(humans, clean, margin, max_lost, max_rejected):
    h, c = np.array(humans), np.array(clean)
    everyone = np.concatenate([h, c])
    review, reject = choose_thresholds(h, c, margin, max_lost, max_rejected)
    lost_allowed, rejected_allowed = int(np.floor(max_lost * len(c))), int(np.floor(max_rejected * len(c)))
    assert 0.0 <= review <= reject <= 1.0  # a model file outside [0, 1] is refused by the pipeline
    # Recall first: every human caught, the threshold lowered by the margin and at least to halfway
    # between the weakest human and the next lower score (no photo within rounding of it) ...
    weakest = h.min()
    lower = everyone[everyone < weakest]
    halfway = lower.max() + (weakest - lower.max()) / 2 if len(lower) else weakest / 2
    if len(lower) and halfway <= lower.max():  # one float step apart: no middle, the human's own score
        halfway = weakest
    catch_all = min(halfway, sigmoid(logit(weakest) - margin) if margin else weakest)
    # Oracle over every candidate threshold (each score, and just above it, capped at 1.0)
    candidates = sorted({*h.tolist(), *c.tolist(), *(min(1.0, np.nextafter(x, 2.0)) for x in (*h, *c))})
    if (c >= catch_all).sum() <= lost_allowed:
        assert review == catch_all and (h >= review).all()
        if margin == 0.0:  # nothing below the weakest human is caught with it
            assert ((everyone >= review) == (everyone >= weakest)).all()
    else:
        # ... unless that loses more than lost_allowed clean images: then the lowest threshold that
        # loses at most that many divides the images as review_from does, and review_from sits mid-gap.
        fitting = [t for t in candidates if (c >= t).sum() <= lost_allowed]
        if fitting:
            assert (c >= review).sum() <= lost_allowed
            assert ((everyone >= review) == (everyone >= min(fitting))).all()
            assert_mid_gap(review, everyone)
        else:  # clean images fused at exactly 1.0, more than allowed: nothing below 1.0 helps
            assert review == 1.0
    fitting = [t for t in candidates if (c >= t).sum() <= rejected_allowed]
    if fitting:
        assert (c >= reject).sum() <= rejected_allowed
        if reject != review:  # chosen for rejection, not raised to review_from
            assert ((everyone >= reject) == (everyone >= min(fitting))).all()
            assert_mid_gap(reject, everyone)
    else:
        assert reject == 1.0


@settings(max_examples=300, deadline=None)
@example(humans=[0.5, 0.5, 0.2], clean=[0.5], min_recall=0.5, max_rejected=0.0)  # ties with the human ranked
@example(humans=[0.0, 0.3], clean=[0.0], min_recall=1.0, max_rejected=0.0)  # a human fused at exactly 0
@example(humans=[0.25000000000000006], clean=[0.25], min_recall=1.0, max_rejected=0.0)  # one float step: no middle
@example(humans=[1e-323], clean=[5e-324], min_recall=1.0, max_rejected=0.0)  # denormals
@example(humans=[i / 50 for i in range(1, 51)], clean=[0.0], min_recall=0.14, max_rejected=0.0)  # 0.14 * 50 > 7
@given(humans=scores, clean=scores, min_recall=st.floats(0.01, 1.0), max_rejected=st.floats(0.0, 0.2))
def test_thresholds_by_recall_against_a_brute_force_oracle(humans, clean, min_recall, max_rejected):
    """--min_recall: review_from divides the photos exactly as the highest candidate threshold that
    still catches the fraction asked for does (margin and max_lost play no part), and sits mid-gap."""
    h, c = np.array(humans), np.array(clean)
    everyone = np.concatenate([h, c])
    review, reject = choose_thresholds(h, c, margin=0.5, max_lost=0.0, max_clean_rejected=max_rejected,
                                       min_recall=min_recall)
    assert 0.0 <= review <= reject <= 1.0
    candidates = sorted({*h.tolist(), *c.tolist()})
    best = max(t for t in candidates if (h >= t).mean() >= min_recall)  # brute force over every score
    assert (h >= review).mean() >= min_recall
    assert ((everyone >= review) == (everyone >= best)).all()
    if (everyone < best).any():
        assert_mid_gap(review, everyone)


def assert_mid_gap(threshold: float, everyone: np.ndarray) -> None:
    """No image's score sits within rounding of a threshold the fit chose between two images: it is
    halfway between the nearest scores on either side (1.0 above the highest)."""
    below, above = everyone[everyone < threshold], everyone[everyone >= threshold]
    lower, upper = float(below.max()), float(above.min()) if len(above) else 1.0
    if upper > np.nextafter(np.nextafter(lower, 2.0), 2.0):  # a gap wider than two ULPs has a middle
        assert threshold - lower == pytest.approx(upper - threshold, rel=1e-9, abs=1e-15)


Range = tuple[float, float]


def tuning_scores(folder, seed: int, face: tuple[Range, Range], person: tuple[Range, Range]):
    """Scores for every tuning photograph, uniform in the (human, clean) ranges given per detector, and the
    file `evaluate --json` would hold them in."""
    rng = np.random.default_rng(seed)
    scores = {}
    for row in load_rows("tuning"):
        which = 0 if row.label in HUMAN_LABELS else 1
        scores[f"{row.package}:{row.member_path}"] = {"centerface.face": float(rng.uniform(*face[which])),
                                                      "ssdlite_person.person": float(rng.uniform(*person[which]))}
    source = folder / "tuning.json"
    source.write_text(json.dumps({"split": "tuning", "scores": scores}))
    return scores, source


def test_the_command_fits_on_tuning_scores_and_writes_a_model_the_pipeline_reads(tmp_path):
    rows = load_rows("tuning")
    scores, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    out = tmp_path / "fusion.json"
    assert main([str(source), str(out), "--features=centerface.face,ssdlite_person.person"]) == 0
    model = json.loads(out.read_text())
    fusion = parse_fusion(out.read_bytes(), str(out))
    assert model["tuning"]["recall"] == 1.0 and fusion.review_from <= fusion.reject_at
    assert all(w > 0 for w in fusion.weights)
    assert "scores sha256" in model["fitted_on"]
    # The figures the fit records are those the pipeline's decision gives on the same scores.
    clean = [scores[f"{row.package}:{row.member_path}"] for row in rows if row.label == "no_person"]
    kept = sum(fusion.score(s) < fusion.review_from for s in clean)
    assert model["tuning"]["keep_rate"] == round(kept / len(clean), 4)
    heldout = tmp_path / "heldout.json"
    heldout.write_text(json.dumps({"split": "heldout", "scores": scores}))
    try:
        main([str(heldout), str(tmp_path / "x.json")])
    except SystemExit as stop:
        assert "tuning split" in str(stop)
    else:
        raise AssertionError("a fit on held-out scores must be refused")


def test_a_fit_on_several_splits_names_each_and_refuses_one_not_named(tmp_path):
    """For a model measured on a later split, the earlier held-out splits may join the fit: only
    when named with --splits, each split once, every file's rows used and recorded in fitted_on."""
    rng = np.random.default_rng(2)
    files = []
    for split in ("tuning", "heldout"):
        scores = {}
        for row in load_rows(split):
            human = row.label in HUMAN_LABELS
            scores[f"{row.package}:{row.member_path}"] = {
                "centerface.face": float(rng.uniform(0.5, 1.0) if human else rng.uniform(0, 0.4))}
        files.append(tmp_path / f"{split}.json")
        files[-1].write_text(json.dumps({"split": split, "scores": scores}))
    out = tmp_path / "fusion.json"
    assert main([*map(str, files), str(out), "--features=centerface.face", "--splits=tuning,heldout"]) == 0
    model = json.loads(out.read_text())
    used = [row for split in ("tuning", "heldout") for row in load_rows(split)
            if row.label in HUMAN_LABELS or row.label == "no_person"]
    humans = sum(row.label in HUMAN_LABELS for row in used)
    assert model["fitted_on"].startswith(f"tuning + heldout splits of pipeline/photo_sets/labels.csv: {humans} images")
    assert "(tuning)" in model["fitted_on"] and "(heldout)" in model["fitted_on"]
    for argv in ([*map(str, files), str(out), "--features=centerface.face"],  # heldout not named
                 [str(files[0]), str(files[0]), str(out), "--features=centerface.face"]):  # a split twice
        try:
            main(argv)
        except SystemExit as stop:
            assert "--splits" in str(stop)
        else:
            raise AssertionError(f"must be refused: {argv}")


def test_a_scores_file_missing_a_photo_or_a_feature_is_refused_not_fitted_as_zero(tmp_path):
    rows = [row for row in load_rows("tuning") if row.label in HUMAN_LABELS or row.label == "no_person"]
    scores = {f"{row.package}:{row.member_path}": {"centerface.face": 0.9 if row.label in HUMAN_LABELS else 0.1,
                                                   "ssdlite_person.person": 0.5} for row in rows}
    source = tmp_path / "tuning.json"
    gone = f"{rows[3].package}:{rows[3].member_path}"
    without_photo = {key: value for key, value in scores.items() if key != gone}
    without_feature = {**scores, gone: {"centerface.face": 0.5}}  # a detector not run on one photo
    for broken, wanted in ((without_photo, f"lack 1 labelled photo(s) of that split, e.g. {gone}"),
                           (without_feature, "have no ssdlite_person.person for some photos")):
        source.write_text(json.dumps({"split": "tuning", "scores": broken}))
        try:
            main([str(source), str(tmp_path / "x.json"), "--features=centerface.face,ssdlite_person.person"])
        except SystemExit as stop:
            assert wanted in str(stop), stop
        else:
            raise AssertionError(f"must be refused: {wanted}")
        assert not (tmp_path / "x.json").exists()
    source.write_text(json.dumps({"split": "tuning", "scores": scores}))
    assert main([str(source), str(tmp_path / "x.json"), "--features=centerface.face,ssdlite_person.person"]) == 0


def test_a_fit_by_recall_records_that_rule_and_reaches_it_on_its_photos(tmp_path, capsys):
    _, source = tuning_scores(tmp_path, seed=3, face=((0.3, 1.0), (0, 0.6)), person=((0.2, 1.0), (0, 0.5)))
    out = tmp_path / "fusion.json"
    assert main([str(source), str(out), "--features=centerface.face,ssdlite_person.person", "--min_recall=0.9"]) == 0
    model = json.loads(out.read_text())
    assert model["options"] == {"l2": 0.1, "min_recall": 0.9, "max_clean_rejected": 0.05}
    assert 0.9 <= model["tuning"]["recall"] < 1.0  # the synthetic scores overlap: 100% would cost more
    for ablated in model["ablation"].values():  # the ablation refits follow the same rule
        assert ablated["tuning"]["recall"] >= 0.9
    usual = tmp_path / "usual.json"
    assert main([str(source), str(usual), "--features=centerface.face,ssdlite_person.person"]) == 0
    assert json.loads(usual.read_text())["options"] == {"l2": 0.1, "margin": 0.5, "max_lost": 0.2,
                                                        "max_clean_rejected": 0.05}
    capsys.readouterr()
    with pytest.raises(SystemExit, match=r"^2$"):  # any exit passed, argparse's for another argument too
        main([str(source), str(tmp_path / "x.json"), "--min_recall=1.5"])
    assert "fit_fusion: error: --min_recall must be within 0..1" in capsys.readouterr().err
    trees = tmp_path / "trees.json"
    assert main([str(source), str(trees), "--features=centerface.face,ssdlite_person.person", "--min_recall=0.9",
                 "--model=monotone_trees"]) == 0
    model = json.loads(trees.read_text())
    assert model["options"]["min_recall"] == 0.9 and "max_lost" not in model["options"]
    assert all(m["tuning"]["recall"] >= 0.9 for m in (model, *model["ablation"].values()))


def test_the_trees_the_pipeline_reads_give_scikit_learns_own_probabilities():
    """The oracle is scikit-learn's predict_proba, for the same fit: the file keeps every tree, leaf and
    threshold, and the pipeline walks them as scikit-learn does (a value equal to a threshold goes left)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from pipeline.photo_sets.fit_fusion import TREE_SETTINGS, label_weights, trees_of

    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, size=(400, 3))
    y = (np.maximum(x[:, 0], x[:, 1]) + 0.5 * x[:, 2] + rng.normal(size=400) > 2).astype(float)
    labels = ["person" if one else "no_person" for one in y]
    baseline, trees = trees_of(x, y, labels)
    fusion = parse_fusion(json.dumps({"features": ["a.x", "b.x", "c.x"], "baseline": baseline, "trees": trees,
                                      "reject_at": 1.0, "review_from": 1.0}).encode(), "trees")
    reference = HistGradientBoostingClassifier(monotonic_cst=[1, 1, 1], **TREE_SETTINGS)
    reference.fit(x, y, sample_weight=label_weights(labels))
    probe = np.vstack([rng.normal(0, 3, size=(300, 3)),
                       [[trees[0][0][1]] * 3]])  # exactly on a threshold
    probe = np.clip(probe, logit(0.0), logit(1.0))  # logits of clipped scores: the range the pipeline feeds
    scores = [{f: sigmoid(v) for f, v in zip(("a.x", "b.x", "c.x"), row, strict=True)} for row in probe]
    ours = np.array([fusion.score(one) for one in scores])
    inputs = np.array([[logit(one[f]) for f in ("a.x", "b.x", "c.x")] for one in scores])
    assert np.abs(ours - reference.predict_proba(inputs)[:, 1]).max() < 1e-9
    # monotone: raising any one score never lowers the fused score
    for one in scores[:100]:
        for feature in one:
            assert fusion.score({**one, feature: min(1.0, one[feature] + 0.2)}) >= fusion.score(one) - 1e-12


def test_the_command_fits_trees_and_records_them_as_a_model_the_pipeline_reads(tmp_path):
    rows = load_rows("tuning")
    scores, source = tuning_scores(tmp_path, seed=2, face=((0.4, 1.0), (0, 0.6)), person=((0.3, 1.0), (0, 0.5)))
    out = tmp_path / "trees.json"
    assert main([str(source), str(out), "--features=centerface.face,ssdlite_person.person",
                 "--model=monotone_trees", "--max_lost=0.3"]) == 0
    model = json.loads(out.read_text())
    fusion = parse_fusion(out.read_bytes(), str(out))
    assert fusion.kind == "monotone_trees" and len(fusion.trees) == 150 and model["kind"].startswith("monotone")
    assert model["options"]["trees"]["max_depth"] == 3 and "l2" not in model["options"]
    assert {name: other.kind for name, other in fusion.ablation} == {"centerface": "monotone_trees",
                                                                     "ssdlite_person": "monotone_trees"}
    # The figures the fit records are those the pipeline's own reading of the file gives.
    humans = [scores[f"{r.package}:{r.member_path}"] for r in rows if r.label in HUMAN_LABELS]
    clean = [scores[f"{r.package}:{r.member_path}"] for r in rows if r.label == "no_person"]
    assert model["tuning"]["recall"] == round(sum(fusion.score(s) >= fusion.review_from for s in humans)
                                              / len(humans), 4)
    assert model["tuning"]["keep_rate"] == round(sum(fusion.score(s) < fusion.review_from for s in clean)
                                                 / len(clean), 4)
    again = tmp_path / "again.json"
    assert main([str(source), str(again), "--features=centerface.face,ssdlite_person.person",
                 "--model=monotone_trees", "--max_lost=0.3"]) == 0
    assert again.read_bytes() == out.read_bytes()  # deterministic


def test_signed_features_keep_a_negative_weight_and_only_they(tmp_path):
    """--signed: a context class that is evidence *against* a person (here: clean photos score high on it)
    keeps its negative weight; without --signed it is dropped (weight 0), as every weight is kept >= 0. The
    option is recorded in the file, and a signed name not among the features is refused."""
    rng = np.random.default_rng(5)
    scores = {}
    for row in load_rows("tuning"):
        human = row.label in HUMAN_LABELS
        scores[f"{row.package}:{row.member_path}"] = {
            "nanodet_person.person": float(rng.uniform(0.3, 1.0) if human else rng.uniform(0.0, 0.6)),
            "nanodet_person.bird": float(rng.uniform(0.0, 0.3) if human else rng.uniform(0.0, 1.0))}
    source = tmp_path / "tuning.json"
    source.write_text(json.dumps({"split": "tuning", "scores": scores}))
    features = "--features=nanodet_person.person,nanodet_person.bird"
    unsigned, signed = tmp_path / "unsigned.json", tmp_path / "signed.json"
    assert main([str(source), str(unsigned), features]) == 0
    assert main([str(source), str(signed), features, "--signed=nanodet_person.bird"]) == 0
    plain, with_sign = json.loads(unsigned.read_text()), json.loads(signed.read_text())
    assert plain["weights"][1] == 0.0 and "signed" not in plain["options"]
    assert with_sign["weights"][1] < 0 < with_sign["weights"][0]
    assert with_sign["options"]["signed"] == ["nanodet_person.bird"]
    fusion = parse_fusion(signed.read_bytes(), str(signed))
    assert not fusion.monotone
    with pytest.raises(SystemExit, match="not among"):
        main([str(source), str(tmp_path / "x.json"), features, "--signed=oidv4_person.dog"])


def test_a_floor_is_fitted_into_the_model_counted_in_its_thresholds_and_kept_by_the_ablation_that_reads_it(tmp_path,
                                                                                                         capsys):
    """--floor: the file carries the floor (and the options record it); a floored photo sits at the top of the
    fused scale when the thresholds are chosen, so the figures the fit records are the pipeline's own decisions
    on the same scores; the refit without the floored detector has no floor, the one without the other keeps it;
    a floor on a feature the fit does not read is refused."""
    rows = load_rows("tuning")
    scores, source = tuning_scores(tmp_path, seed=3, face=((0.2, 1.0), (0, 0.85)), person=((0.3, 1.0), (0, 0.6)))
    out = tmp_path / "floored.json"
    features = "--features=centerface.face,ssdlite_person.person"
    assert main([str(source), str(out), features, "--floor=centerface.face=0.8", "--max_lost=0.1"]) == 0
    model = json.loads(out.read_text())
    fusion = parse_fusion(out.read_bytes(), str(out))
    assert model["floors"] == {"centerface.face": 0.8} == model["options"]["floors"]
    assert fusion.floors == (("centerface.face", 0.8),)
    assert "floors" in model["ablation"]["ssdlite_person"] and "floors" not in model["ablation"]["centerface"]
    humans = [scores[f"{r.package}:{r.member_path}"] for r in rows if r.label in HUMAN_LABELS]
    clean = [scores[f"{r.package}:{r.member_path}"] for r in rows if r.label == "no_person"]
    assert any(s["centerface.face"] >= 0.8 for s in clean)  # the floor costs clean photos here
    for s in clean + humans:
        if s["centerface.face"] >= 0.8:
            assert fusion.score(s) >= fusion.reject_at
    kept, caught = (sum(fusion.score(s) < fusion.review_from for s in clean),
                    sum(fusion.score(s) >= fusion.review_from for s in humans))
    assert model["tuning"]["keep_rate"] == round(kept / len(clean), 4)
    assert model["tuning"]["recall"] == round(caught / len(humans), 4)
    assert sum(fusion.score(s) >= fusion.review_from for s in clean) <= math.floor(0.1 * len(clean))
    plain = tmp_path / "plain.json"
    assert main([str(source), str(plain), features, "--max_lost=0.1"]) == 0
    assert "floors" not in json.loads(plain.read_text()) and "floors" not in json.loads(plain.read_text())["options"]
    with pytest.raises(SystemExit, match="not among"):
        main([str(source), str(tmp_path / "x.json"), features, "--floor=oidv4_person.person=0.8"])
    capsys.readouterr()
    with pytest.raises(SystemExit, match=r"^2$"):
        main([str(source), str(tmp_path / "x.json"), features, "--floor=centerface.face=0"])
    assert "error: argument --floor: 'centerface.face=0': expected" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="more than once"):  # which floor would the file hold?
        main([str(source), str(tmp_path / "x.json"), features, "--floor=centerface.face=0.7",
              "--floor=centerface.face=0.85"])
    # A floor under most clean faces would push review_from to 1.0: the weights would decide nothing.
    with pytest.raises(SystemExit, match="the floors alone take"):
        main([str(source), str(tmp_path / "x.json"), features, "--floor=centerface.face=0.3", "--max_lost=0.1"])


# `python -m MODULE ARGV...` with a stop (the signal named first) landing as the file named second is written:
# `signal path when module argv...`. `writing`: halfway through its write, to the file itself or to a temporary beside
# it (`.NAME.*`), before that is flushed to disk; `renamed`: right after the temporary was renamed over the name.
STOPPED_WRITING = """
import os, pathlib, runpy, signal, sys, time

signum, target, when, module = int(sys.argv.pop(1)), pathlib.Path(sys.argv.pop(1)), sys.argv.pop(1), sys.argv.pop(1)

def ours(path):
    path = pathlib.Path(path)
    return path.parent == target.parent and (path.name == target.name or path.name.startswith(f".{target.name}."))

def stop():
    os.kill(os.getpid(), signum)
    time.sleep(5)  # the stop is raised here

def cut(write):
    def writing(self, data, *args, **kwargs):
        if when == "writing" and ours(self):
            write(self, data[:len(data) // 2], *args, **kwargs)
            stop()
        return write(self, data, *args, **kwargs)
    return writing

def syncing(fd, fsync=os.fsync):
    if when == "writing" and ours(os.readlink(f"/proc/self/fd/{fd}")):
        stop()
    return fsync(fd)

def replacing(source, destination, *args, replace=os.replace, **kwargs):
    replace(source, destination, *args, **kwargs)
    if when == "renamed" and pathlib.Path(destination) == target:
        stop()

pathlib.Path.write_text = cut(pathlib.Path.write_text)
pathlib.Path.write_bytes = cut(pathlib.Path.write_bytes)
os.fsync, os.replace = syncing, replacing
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def stopped_writing(signum: int, target, module: str, argv: list[str], when: str = "writing"):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", STOPPED_WRITING, str(int(signum)), str(target), when, module, *argv],
                          capture_output=True, text=True, timeout=300)


def listing(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


STOPS = [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")]


@pytest.mark.parametrize(("signum", "said"), STOPS)
def test_a_fit_stopped_as_it_writes_its_model_leaves_the_file_as_it_was_and_says_so(tmp_path, signum, said):
    """The model file was written in place: a stop during the write left half a model under the name, the one it
    replaced lost, and the process ended with a traceback (Ctrl-C) or by SIGTERM's default (-15, no word)."""
    _, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    models = tmp_path / "models"
    models.mkdir()
    (models / "fusion.json").write_text('{"an": "earlier model"}\n')
    before = listing(models)
    features = "--features=centerface.face,ssdlite_person.person"
    done = stopped_writing(signum, models / "fusion.json", "pipeline.photo_sets.fit_fusion",
                           [str(source), str(models / "fusion.json"), features])
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().splitlines() == [
        f"fit_fusion: stopped ({said}); the fit did not finish; {models / 'fusion.json'} not written (as it was)"]
    assert listing(models) == before  # no temporary beside it either


@pytest.mark.parametrize(("signum", "said"), STOPS)
def test_a_fit_stopped_right_after_its_model_replaced_the_file_says_it_was_written(tmp_path, signum, said):
    """The rename is the commit point: a stop landing after it (the folder's fsync, the bookkeeping) said "not written
    (as it was)" of a model file it had just replaced."""
    _, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    models = tmp_path / "models"
    models.mkdir()
    (models / "fusion.json").write_text('{"an": "earlier model"}\n')
    features = "--features=centerface.face,ssdlite_person.person"
    done = stopped_writing(signum, models / "fusion.json", "pipeline.photo_sets.fit_fusion",
                           [str(source), str(models / "fusion.json"), features], when="renamed")
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().splitlines() == [
        f"fit_fusion: stopped ({said}); {models / 'fusion.json'} written (whole)"]
    assert sorted(listing(models)) == ["fusion.json"]  # no temporary beside it
    model = parse_fusion((models / "fusion.json").read_bytes(), "fusion.json")  # the fitted model, whole
    assert model.features == ("centerface.face", "ssdlite_person.person")


@pytest.mark.parametrize("kind", ["folder", "named pipe", "symbolic link", "missing folder", "dataset's folder"])
def test_a_model_file_name_that_is_no_file_is_refused_in_one_line(tmp_path, monkeypatch, capsys, kind):
    """A folder was a traceback after the whole fit (the rename failed); a named pipe was replaced by the model; so was
    a link (the model it led to left stale, though said written); a missing folder was a traceback after the fit; a
    model written inside a dataset's folder made verify refuse the dataset. Each is refused before the fit: one line
    (parser.error's, as a scores file refused), exit 2, nothing written."""
    from pipeline.photo_sets import fit_fusion

    _, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    out = tmp_path / "out"
    if kind == "folder":
        out.mkdir()
    elif kind == "named pipe":
        os.mkfifo(out)
    elif kind == "symbolic link":
        (tmp_path / "kept.json").write_text('{"an": "earlier model"}\n')
        out.symlink_to(tmp_path / "kept.json")
    elif kind == "missing folder":
        out = tmp_path / "missing" / "fusion.json"
    else:
        (tmp_path / "dataset").mkdir()
        (tmp_path / "dataset" / "manifest.json").write_text('{"files": []}\n')
        out = tmp_path / "dataset" / "fusion.json"
    before = {str(path): path.lstat().st_mode for path in tmp_path.rglob("*")}
    monkeypatch.setattr(fit_fusion, "fit", lambda *a, **k: pytest.fail("fitted although refused"))
    with pytest.raises(SystemExit) as refused:
        main([str(source), str(out), "--features=centerface.face,ssdlite_person.person"])
    said = {"folder": f"{out} is a folder, not a file: not written",
            "named pipe": f"{out} is a named pipe, not a file: not written",
            "symbolic link": f"{out} is a symbolic link (to {tmp_path / 'kept.json'}): the file is written whole under "
                             "its name, which would replace the link and leave the file it leads to as it was; give "
                             "that file's own path",
            "missing folder": f"{out}: its folder {out.parent} does not exist: not written",
            "dataset's folder": f"{out} lies inside the dataset {tmp_path / 'dataset'}, whose manifest does not list "
                                "it (verify would refuse the dataset): write it outside"}[kind]
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"fit_fusion: error: out {said} (see `python -m pipeline.photo_sets.fit_fusion --help`)"]
    assert {str(path): path.lstat().st_mode for path in tmp_path.rglob("*")} == before
    if kind == "symbolic link":
        assert (tmp_path / "kept.json").read_text() == '{"an": "earlier model"}\n'


def test_a_model_file_name_that_becomes_a_folder_during_the_fit_is_refused_in_one_printable_line(tmp_path,
                                                                                               monkeypatch):
    """A name checked before the fit can become no file during it (a folder made there): the refusal, raised as the
    model is written, quoted the name as typed (its escapes sent to the terminal, its line break printing a forged
    line of its own), where the same refusal before the fit (parser.error's) is escaped. It is escaped as that is."""
    from pipeline.photo_sets import fit_fusion

    _, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    out = tmp_path / "fusion\x1b[2J\nfit_fusion: written (whole)\u202e.json"
    a_folder_made_after_the_fit(monkeypatch, fit_fusion, out)
    with pytest.raises(SystemExit) as refused:
        main([str(source), str(out), "--features=centerface.face,ssdlite_person.person"])
    assert refused.value.code == (f"fit_fusion: {tmp_path}/fusion\\x1b[2J\\nfit_fusion: written (whole)\\u202e.json "
                                  "is a folder, not a file: not written")


FORGED_NAME = "x\x1b[2J\nfit_fusion: written (whole)\u202e.y"  # a feature's name pasted with escapes and a line


@pytest.mark.parametrize("flag", [f"--signed={FORGED_NAME}", f"--floor={FORGED_NAME}=0.5",
                                  f"--features=centerface.face,{FORGED_NAME}", f"--splits=heldout,{FORGED_NAME}"],
                         ids=["signed", "floor", "features", "splits"])
def test_a_refusal_in_the_fit_quoting_a_flags_value_is_one_printable_line(tmp_path, flag):
    """The fit's own refusals (a --signed or --floor feature not fitted, a feature the scores lack, scores of a split
    not named) quoted the flag's value as typed: its escapes reached the terminal and its line break printed a forged
    line of its own, where argparse's refusal of the same text is escaped (`usage_said`). Each is escaped as that is."""
    _, source = tuning_scores(tmp_path, seed=1, face=((0.5, 1.0), (0, 0.4)), person=((0.4, 1.0), (0, 0.3)))
    if flag.startswith("--splits"):
        source.write_text(source.read_text().replace('"split": "tuning"', '"split": "tuning5"'))
    with pytest.raises(SystemExit) as refused:
        main([str(source), str(tmp_path / "x.json"), "--features=centerface.face,ssdlite_person.person", flag])
    said = str(refused.value.code)
    assert said.isprintable() and "x\\x1b[2J\\nfit_fusion: written (whole)\\u202e.y" in said, said
    assert not (tmp_path / "x.json").exists()


def test_a_stopped_fits_line_names_its_files_each_unprintable_character_escaped():
    """What a stopped fit_fusion or fit_probe says it left names its files as typed: a name's escapes reached the
    terminal and its line break printed a forged line of its own (`fit_fusion: stopped (Ctrl-C); ... written`)."""
    from pipeline.photo_sets.fit_fusion import files_left

    assert files_left(["a\x1b[2J\nb.json", "c.json"], ["c.json"]) == (
        "c.json written (whole); a\\x1b[2J\\nb.json not written (as it was)")
    assert files_left(["a\u202e.json"], ["a\u202e.json"]) == "a\\u202e.json written (whole)"


def test_an_unknown_option_or_a_bad_value_is_one_line_and_exit_2(tmp_path, capsys):
    """argparse's usage line and then its error (a dozen lines) were what pass-pipeline says in one."""
    help_line = "(see `python -m pipeline.photo_sets.fit_fusion --help`)"
    for argv, said in ((["--bogus"], f"unrecognized arguments: --bogus {help_line}"),
                       (["--min_recall=2"], f"--min_recall must be within 0..1 (0: off) {help_line}")):
        with pytest.raises(SystemExit) as ended:
            main([str(tmp_path / "scores.json"), str(tmp_path / "fusion.json"), *argv])
        assert ended.value.code == 2
        assert capsys.readouterr().err.splitlines() == [f"fit_fusion: error: {said}"]
    assert list(tmp_path.iterdir()) == []


def a_folder_made_after_the_fit(monkeypatch: pytest.MonkeyPatch, script: Any, out: Path) -> None:
    """`script.fit` (fit_fusion's, fit_probe's) makes a folder at `out` once it has fitted, before the output is
    written: a name that was no folder when checked, one by the write."""
    fitted = script.fit

    def fit_then_a_folder(*args: Any, **kwargs: Any) -> Any:
        result = fitted(*args, **kwargs)
        out.mkdir()
        return result

    monkeypatch.setattr(script, "fit", fit_then_a_folder)
