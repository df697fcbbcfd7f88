import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.detectors.fusion import parse_fusion
from pipeline.photo_sets import cross_validate
from pipeline.photo_sets.cross_validate import Counts, Setting, leave_one_split_out, main
from pipeline.photo_sets.fetch import HUMAN_LABELS, load_rows
from pipeline.photo_sets.fit_fusion import fit, labelled_scores

FEATURES = ("centerface.face", "ssdlite_person.person")
SPLITS = ("tuning", "heldout", "heldout2")


def synthetic(split: str, seed: int) -> dict:
    """Scores for every labelled photo of a split that overlap between people and clean photos, so that
    each left-out split has misses and losses to count."""
    rng = np.random.default_rng(seed)
    scores = {}
    for row in load_rows(split):
        human = row.label in HUMAN_LABELS
        scores[f"{row.package}:{row.member_path}"] = {
            "centerface.face": float(rng.uniform(0.2, 1.0) if human else rng.uniform(0, 0.6)),
            "ssdlite_person.person": float(rng.uniform(0.1, 0.9) if human else rng.uniform(0, 0.5))}
    return {"split": split, "scores": scores}


@pytest.fixture(scope="module")
def results() -> list[dict]:
    return [synthetic(split, seed) for seed, split in enumerate(SPLITS)]


# max_lost=0.15 binds (the review threshold is the one that loses that many clean photos); with 0.9 every
# fitted-on person is caught and the margin places the threshold.
@pytest.mark.parametrize("setting", [Setting(FEATURES, max_lost=0.15),
                                     Setting(FEATURES, margin=0.0, l2=1.0, max_lost=0.9),
                                     Setting(FEATURES, l2=1.0, min_recall=0.9),
                                     Setting(FEATURES, max_lost=0.15, floors=(("centerface.face", 0.9),))])
def test_each_left_out_split_is_decided_by_the_model_fit_fusion_writes_for_the_others(results, setting):
    counts = leave_one_split_out({r["split"]: labelled_scores(r, FEATURES) for r in results}, setting)
    assert list(counts) == list(SPLITS)
    for left_out in SPLITS:
        # The oracle: fit_fusion's own command path on the other splits, read back as the pipeline reads it.
        others = [r for r in results if r["split"] != left_out]
        model = fit(others, FEATURES, setting.l2, setting.margin, setting.max_lost, setting.max_clean_rejected,
                    [r["split"] for r in others], min_recall=setting.min_recall, floors=setting.floors)
        assert model.get("floors", {}) == dict(setting.floors)
        if setting.min_recall:  # each fold's model catches the fraction asked of the photos it is fitted on
            assert model["tuning"]["recall"] >= setting.min_recall and model["options"]["min_recall"] == 0.9
        fusion = parse_fusion(json.dumps(model).encode(), "m")
        rows, scores = labelled_scores(next(r for r in results if r["split"] == left_out), FEATURES)
        out = [fusion.score(s) >= fusion.review_from for s in scores]
        humans = [o for row, o in zip(rows, out, strict=True) if row.label in HUMAN_LABELS]
        clean = [o for row, o in zip(rows, out, strict=True) if row.label == "no_person"]
        assert counts[left_out] == Counts(sum(humans), len(humans), clean.count(False), len(clean))
        if setting.max_lost < 0.5:
            assert 0 < counts[left_out].caught < counts[left_out].humans  # the data was made to overlap


def test_a_margin_below_the_weakest_person_costs_clean_photographs(results):
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    pooled = {margin: sum(leave_one_split_out(splits, Setting(FEATURES, margin=margin, max_lost=0.9)).values(),
                          Counts(0, 0, 0, 0)) for margin in (0.0, 1.0)}
    assert pooled[1.0].kept < pooled[0.0].kept and pooled[1.0].caught >= pooled[0.0].caught


def test_more_room_for_losses_catches_at_least_as_many(results):
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    tight = sum(leave_one_split_out(splits, Setting(FEATURES, max_lost=0.05)).values(), Counts(0, 0, 0, 0))
    loose = sum(leave_one_split_out(splits, Setting(FEATURES, max_lost=0.3)).values(), Counts(0, 0, 0, 0))
    assert loose.caught >= tight.caught and loose.kept <= tight.kept and loose.humans == tight.humans


def written(results: list[dict], folder) -> list[str]:
    """Each split's scores as the file `evaluate --json` writes, by path."""
    paths = []
    for result in results:
        path = folder / f"{result['split']}.json"
        path.write_text(json.dumps(result))
        paths.append(str(path))
    return paths


def test_the_command_prints_the_pooled_counts_per_setting_and_refuses_unnamed_splits(results, tmp_path, capsys):
    paths = written(results, tmp_path)
    features = "--features=" + ",".join(FEATURES)
    assert main([*paths, "--splits=" + ",".join(SPLITS), features, "--max_lost=0.1,0.2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    for line, max_lost in zip(lines, (0.1, 0.2), strict=True):
        total = sum(leave_one_split_out(splits, Setting(FEATURES, max_lost=max_lost)).values(), Counts(0, 0, 0, 0))
        assert line.startswith(f"centerface.face+ssdlite_person.person max_lost={max_lost} ")
        assert f"recall {total.caught}/{total.humans} " in line and f"keep-rate {total.kept}/{total.clean} " in line
        assert all(f" {split} " in line or f"({split} " in line for split in SPLITS)
    for argv in ([*paths, "--splits=tuning,heldout", features], [paths[0], "--splits=tuning", features]):
        with pytest.raises(SystemExit, match=r"^2$"):  # any exit passed, argparse's for another argument too
            main(argv)
        assert "one scores file per split named in --splits (at least two)" in capsys.readouterr().err


def test_a_scores_file_named_with_terminal_escapes_is_named_in_one_printable_line(results, tmp_path, capsys):
    """Each scores file's line (`# PATH: sha256 ...`) named it as typed: a name's escapes reached the terminal and its
    line break printed a line of its own, read as a setting's. It is escaped as a refusal naming it is."""
    folder = tmp_path / "scores\x1b[2J\ncenterface.face max_lost=0.1 recall 9\u202e"
    folder.mkdir()
    paths = written(results, folder)
    assert main([*paths, "--splits=" + ",".join(SPLITS), "--features=" + ",".join(FEATURES)]) == 0
    named = [line for line in capsys.readouterr().out.splitlines() if line.startswith("# ")]
    shown = f"{tmp_path}/scores\\x1b[2J\\ncenterface.face max_lost=0.1 recall 9\\u202e"
    assert [line.split(": sha256 ")[0] for line in named] == [f"# {shown}/{split}.json" for split in SPLITS], named
    assert all(line.isprintable() for line in named)


def test_depictions_count_neither_as_people_nor_as_clean_photographs(results):
    rows, scores = labelled_scores(results[0], FEATURES)
    depiction = dataclasses.replace(rows[0], label="depiction")
    plain = {"a": (rows, scores), "b": labelled_scores(results[1], FEATURES)}
    with_depiction = {"a": ([*rows, depiction], [*scores, scores[0]]), "b": plain["b"]}
    setting = Setting(FEATURES)
    assert leave_one_split_out(with_depiction, setting)["a"] == leave_one_split_out(plain, setting)["a"]


def either_detector(split: str, seed: int) -> dict:
    """Scores where a person is what either detector sees clearly and the other misses, and a clean photo
    is what both see weakly: an OR that no weighted sum of the two separates (two weak scores add up to
    about one clear score and one missed), and that monotone trees learn. Few distinct values, each its
    own bin of the trees' histograms (with hundreds of distinct values a bin may straddle the gap between
    clean and human and blur the edge)."""
    rng = np.random.default_rng(seed)
    scores = {}
    for row in load_rows(split):
        if row.label in HUMAN_LABELS:
            clear, missed = rng.choice([0.85, 0.9, 0.95, 0.99]), rng.choice([0.001, 0.01, 0.02, 0.05])
            pair = (clear, missed) if rng.random() < 0.5 else (missed, clear)
        else:
            pair = tuple(rng.choice([0.3, 0.4, 0.5, 0.6, 0.7], size=2))
        scores[f"{row.package}:{row.member_path}"] = dict(zip(FEATURES, map(float, pair), strict=True))
    return {"split": split, "scores": scores}


def test_monotone_trees_learn_what_a_weighted_sum_cannot():
    """The oracle is the rule that made the data: every left-out person caught and every clean photo kept
    by the trees; the logistic, at the same options, loses clean photos or people."""
    splits = {split: labelled_scores(either_detector(split, seed), FEATURES) for seed, split in enumerate(SPLITS)}
    trees = sum(leave_one_split_out(splits, Setting(FEATURES, model="monotone_trees")).values(), Counts(0, 0, 0, 0))
    line = sum(leave_one_split_out(splits, Setting(FEATURES)).values(), Counts(0, 0, 0, 0))
    assert (trees.caught, trees.kept) == (trees.humans, trees.clean)
    assert line.caught < line.humans or line.kept < line.clean


def test_the_trees_never_take_a_photo_in_because_a_detector_scores_it_higher(results):
    """Monotone like the logistic's non-negative weights: raising any one score never keeps a photo that
    was taken out."""
    rows, scores = labelled_scores(results[0], FEATURES)
    takes_out = cross_validate._fit(rows, scores, Setting(FEATURES, model="monotone_trees", max_lost=0.3))
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(300):
        one = dict(zip(FEATURES, map(float, rng.uniform(0, 1, size=len(FEATURES))), strict=True))
        higher = {**one, FEATURES[int(rng.integers(len(FEATURES)))]: float(rng.uniform(0, 1))}
        if all(higher[f] >= one[f] for f in FEATURES) and takes_out(one):
            assert takes_out(higher)
            checked += 1
    assert checked >= 30, checked  # trees taking nothing out (or never a pair higher) would check nothing


def test_the_command_compares_models_and_refuses_an_unknown_one(results, tmp_path, capsys):
    paths = written(results, tmp_path)
    args = [*paths, "--splits=" + ",".join(SPLITS), "--features=" + ",".join(FEATURES), "--l2=0.1,1.0"]
    assert main([*args, "--model=logistic,monotone_trees"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    # two logistic lines (one per l2), one for the trees (no l2 to vary)
    assert [line.split(":")[0].rsplit(" ", 1)[-1] for line in lines] == ["l2=0.1", "l2=1.0", "monotone_trees"]
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    total = sum(leave_one_split_out(splits, Setting(FEATURES, model="monotone_trees")).values(), Counts(0, 0, 0, 0))
    assert f"recall {total.caught}/{total.humans} " in lines[2] and f"keep-rate {total.kept}/{total.clean} " in lines[2]
    with pytest.raises(SystemExit, match=r"^2$"):
        main([*args, "--model=forest"])
    assert "--model: 'forest', choose from logistic, monotone_trees" in capsys.readouterr().err


def test_the_command_compares_fits_by_recall(results, tmp_path, capsys):
    """--min_recall replaces --max_lost: each fold's model catches at least that fraction of the photos it
    is fitted on, and a higher fraction catches at least as many of the left-out ones."""
    paths = written(results, tmp_path)
    features = "--features=" + ",".join(FEATURES)
    assert main([*paths, "--splits=" + ",".join(SPLITS), features, "--min_recall=0.8,0.95"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert [line.split(":", 1)[0] for line in lines] == [
        "centerface.face+ssdlite_person.person min_recall=0.8 l2=0.1",
        "centerface.face+ssdlite_person.person min_recall=0.95 l2=0.1"]
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    low, high = (sum(leave_one_split_out(splits, Setting(FEATURES, min_recall=r)).values(), Counts(0, 0, 0, 0))
                 for r in (0.8, 0.95))
    assert f"recall {low.caught}/{low.humans} " in lines[0] and f"recall {high.caught}/{high.humans} " in lines[1]
    assert high.caught >= low.caught and high.kept <= low.kept


def test_fits_by_recall_vary_l2_compare_with_max_lost_only_when_asked_and_refuse_bad_values(results, tmp_path, capsys):
    paths = written(results, tmp_path)
    common = [*paths, "--splits=" + ",".join(SPLITS), "--features=" + ",".join(FEATURES)]
    assert main([*common, "--min_recall=0.9", "--l2=0.1,100"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert [line.split(":", 1)[0].rsplit(" ", 1)[1] for line in lines] == ["l2=0.1", "l2=100.0"]
    splits = {r["split"]: labelled_scores(r, FEATURES) for r in results}
    strong = sum(leave_one_split_out(splits, Setting(FEATURES, l2=100.0, min_recall=0.9)).values(), Counts(0, 0, 0, 0))
    assert f"recall {strong.caught}/{strong.humans} " in lines[1]
    assert f"keep-rate {strong.kept}/{strong.clean} " in lines[1]
    assert main([*common, "--min_recall=0.9", "--max_lost=0.2"]) == 0  # both kinds when both are given
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 2 and "min_recall=0.9" in lines[0] and "max_lost=0.2" in lines[1]
    for bad in ("1.5", "0", "-0.1", "x"):
        with pytest.raises(SystemExit, match=r"^2$"):
            main([*common, f"--min_recall={bad}"])
        assert "cross_validate: error: --min_recall" in capsys.readouterr().err, bad


def test_a_feature_named_with_terminal_escapes_and_a_line_break_is_named_in_one_printable_line(results, tmp_path,
                                                                                                capsys):
    """Each setting's line names its features, signed ones and floors as typed (and as the scores files name them):
    one named with ESC [2J, a right-to-left override and a line break was printed as it was, its escape sent to the
    terminal and a forged setting's line of its own. The line is one line, each unprintable character escaped as
    Python writes it in a string, as a refusal naming it is."""
    evil = "person.x\x1b[2J\u202e\ncenterface.face recall 9/9"  # no '=' or ',': --floor and --features split there
    renamed = [{**result, "scores": {key: {"centerface.face": scores["centerface.face"],
                                           evil: scores["ssdlite_person.person"]}
                                     for key, scores in result["scores"].items()}} for result in results]
    paths = written(renamed, tmp_path)
    assert main([*paths, "--splits=" + ",".join(SPLITS), f"--features=centerface.face,{evil}", "--max_lost=0.2",
                 f"--signed={evil}", f"--floor={evil}=0.95"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    shown = "person.x\\x1b[2J\\u202e\\ncenterface.face recall 9/9"
    assert len(lines) == 1 and lines[0].isprintable(), lines
    line = lines[0]
    assert line.startswith(f"centerface.face+{shown} signed={shown} floor {shown}=0.95 max_lost=0.2 "), line


def test_signed_features_are_named_in_the_row_and_a_name_in_no_set_is_refused(results, tmp_path, capsys):
    """--signed: the row says which features kept a weight of either sign (rows with and without it differ
    only there), and a name in no --features set is a typo, refused rather than compared unsigned."""
    paths = written(results, tmp_path)
    features = "--features=" + ",".join(FEATURES)
    assert main([*paths, "--splits=" + ",".join(SPLITS), features, "--max_lost=0.2", f"--signed={FEATURES[1]}"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert line.startswith(f"{'+'.join(FEATURES)} signed={FEATURES[1]} max_lost=0.2 ")
    with pytest.raises(SystemExit):
        main([*paths, "--splits=" + ",".join(SPLITS), features, "--signed=nanodet_person.brid"])
    assert "in no --features set" in capsys.readouterr().err


def test_a_floor_is_named_in_the_row_and_a_bad_one_refused(results, tmp_path, capsys):
    paths = []
    for result in results:
        path = tmp_path / f"{result['split']}.json"
        path.write_text(json.dumps(result))
        paths.append(str(path))
    args = [*paths, f"--splits={','.join(SPLITS)}", f"--features={','.join(FEATURES)}", "--max_lost=0.15"]
    assert main([*args, "--floor=centerface.face=0.5"]) == 0  # clean faces reach 0.6: it costs some
    floored = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(floored) == 1 and " floor centerface.face=0.5 max_lost=0.15" in floored[0]
    assert main(args) == 0
    plain = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert "floor" not in plain[0] and plain[0].split(":", 1)[1] != floored[0].split(":", 1)[1]
    for bad in ("--floor=centerface.face", "--floor=centerface.face=1.5", "--floor=face=0.8",
                "--floor=centerface.fcae=0.8"):
        with pytest.raises(SystemExit, match=r"^2$"):
            main([*args, bad])
        said = capsys.readouterr().err
        assert said.startswith("cross_validate: error: ") and "--floor" in said, bad


# `python -m pipeline.photo_sets.cross_validate ARGV...` with a stop (the signal named first) sent to itself as the
# fit_fusion fit is called for the time named second: `signal call argv...`.
STOPPED_AT_FIT = """
import os, runpy, signal, sys
import pipeline.photo_sets.fit_fusion as fit_fusion

signum, at = int(sys.argv.pop(1)), int(sys.argv.pop(1))
calls, fit_kind = [], fit_fusion.fit_kind

def counted(*args, **kwargs):
    calls.append(1)
    if len(calls) == at:
        os.kill(os.getpid(), signum)
    return fit_kind(*args, **kwargs)

fit_fusion.fit_kind = counted
runpy.run_module("pipeline.photo_sets.cross_validate", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_stopped_comparison_says_in_one_line_how_far_it_went(results, tmp_path, signum, said):
    """It had no stop handling: a KeyboardInterrupt traceback through the fit (Ctrl-C), or -15 and no word (SIGTERM).
    Stopped in its second setting (one fit per left-out split), it says one was compared and nothing written."""
    paths = written(results, tmp_path)
    done = subprocess.run([sys.executable, "-c", STOPPED_AT_FIT, str(int(signum)), str(len(SPLITS) + 1), *paths,
                           "--splits=" + ",".join(SPLITS), "--features=" + ",".join(FEATURES), "--max_lost=0.1,0.2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip().splitlines() == [
        f"cross_validate: stopped ({said}); 1 setting(s) compared (each line printed), the others not; nothing was "
        "written"]
    assert len([line for line in done.stdout.splitlines() if not line.startswith("#")]) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(Path(path).name for path in paths)


def test_an_unknown_option_or_a_bad_value_is_one_line_and_exit_2(tmp_path, capsys):
    """argparse's usage line and then its error (a dozen lines) were what pass-pipeline says in one."""
    help_line = "(see `python -m pipeline.photo_sets.cross_validate --help`)"
    for argv, said in ((["--bogus"], f"unrecognized arguments: --bogus {help_line}"),
                       (["--model=forest"], f"--model: 'forest', choose from {', '.join(cross_validate.MODELS)} "
                                            f"{help_line}")):
        with pytest.raises(SystemExit) as ended:
            main([str(tmp_path / "tuning.json"), "--splits=tuning,heldout", *argv])
        assert ended.value.code == 2
        assert capsys.readouterr().err.splitlines() == [f"cross_validate: error: {said}"]
    assert list(tmp_path.iterdir()) == []
