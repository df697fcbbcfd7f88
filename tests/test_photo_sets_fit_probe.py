"""fit_probe: the features a run's own pass computes, a fit whose folded weights give the standardised logistic's
probability through the pipeline's own probe reader, and out-of-fold scores for the fusion fit."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.detectors.probes import parse_probe
from pipeline.photo_sets import fit_probe
from pipeline.photo_sets.fetch import HUMAN_LABELS, fitted_rows, load_rows
from tests.conftest import run_in_a_folder_one_may_only_read
from tests.test_photo_sets_fit_fusion import STOPS, a_folder_made_after_the_fit, listing, stopped_writing


def features(n: int, seed: int, width: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like features (>= 0, many zeros), the first few larger where y = 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.maximum(rng.normal(0.0, 1.0, (n, width)), 0.0) * rng.uniform(0.5, 20.0, width)
    x[:, :3] += y[:, None] * rng.uniform(0.5, 2.0, (n, 3))
    return x.astype(np.float32), y


def test_the_folded_weights_give_the_standardised_logistics_probability():
    x, y = features(300, 1)
    weights, bias = fit_probe.fit(x, y, c=0.05)
    z = np.log1p(x.astype(np.float64))
    mean, spread = z.mean(axis=0), z.std(axis=0) + fit_probe.MIN_SPREAD
    oracle = LogisticRegression(C=0.05, max_iter=5000).fit((z - mean) / spread, y)
    assert np.allclose(fit_probe.probability(x, weights, bias), oracle.predict_proba((z - mean) / spread)[:, 1],
                       atol=1e-9)


def test_a_written_probe_file_scores_through_the_pipelines_reader_as_the_fit_does():
    x, y = features(200, 2)
    x[:, 5] = 0.0  # a feature that never fires: its spread is 0, and nothing divides by it
    weights, bias = fit_probe.fit(x, y)
    assert np.isfinite(weights).all() and np.isfinite(bias)
    data = fit_probe.probe_file(weights, bias, "Reshape:0", "a test", 0.003)
    probe = parse_probe("scene_person", "p.json", hashlib.sha256(data).hexdigest(), data)
    assert probe.input == "Reshape:0" and probe.transform == "log1p"
    assert np.allclose(probe.scores(x, len(x)), fit_probe.probability(x, weights, bias), atol=1e-6)


def test_out_of_fold_scores_come_from_probes_that_never_saw_their_split():
    x, y = features(240, 3)
    splits = np.array(["a", "b", "c"] * 80)
    got = fit_probe.out_of_fold(x, y, splits, c=0.01)
    for split in "abc":
        here = splits == split
        weights, bias = fit_probe.fit(x[~here], y[~here], c=0.01)
        assert np.array_equal(got[here], fit_probe.probability(x[here], weights, bias))
    everything = fit_probe.probability(x, *fit_probe.fit(x, y, c=0.01))
    assert not np.allclose(got, everything)  # in-sample scores would differ: these are not those


def _cached(tmp_path: Path, split: str, seed: int) -> tuple[list, np.ndarray]:
    """Features for a real split's used rows, as the cache stores them (no photographs needed)."""
    rows = fitted_rows(split)
    y = np.array([row.label in HUMAN_LABELS for row in rows], dtype=int)
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(0.0, 1.0, (len(rows), 8)), 0.0)
    x[:, 0] += 2.0 * y
    (tmp_path / "features").mkdir(exist_ok=True)
    np.savez(tmp_path / "features" / f"{split}.npz", keys=np.array([f"{r.package}:{r.member_path}" for r in rows]),
             vectors=x, source=np.array(fit_probe.feature_source("open_nsfw", "Reshape:0", 512)))
    scores = {f"{row.package}:{row.member_path}": {"centerface.face": 0.1} for row in load_rows(split)}
    (tmp_path / "scores").mkdir(exist_ok=True)
    (tmp_path / "scores" / f"{split}.json").write_text(json.dumps({"split": split, "scores": scores}))
    return rows, x


def test_the_command_writes_the_probe_and_out_of_fold_scores_for_every_used_photo(tmp_path, capsys):
    (rows5, x5), (rows6, x6) = _cached(tmp_path, "heldout5", 5), _cached(tmp_path, "heldout6", 6)
    out = tmp_path / "probe.json"
    assert fit_probe.main([str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6", "--c=0.1",
                           f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}",
                           f"--scores_out={tmp_path / 'with'}"]) == 0
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() in capsys.readouterr().out
    body = json.loads(data)
    assert len(body["weights"]) == 8 and "heldout5 + heldout6" in body["fitted_on"] and body["options"]["c"] == 0.1
    y = np.array([row.label in HUMAN_LABELS for row in rows5 + rows6], dtype=int)
    expected = fit_probe.out_of_fold(np.vstack([x5, x6]), y, np.array(["5"] * len(rows5) + ["6"] * len(rows6)), 0.1)
    written = []
    assert json.loads((tmp_path / "with" / "heldout5.json").read_text())["context_probes"] == {
        "open_nsfw.scene_person": "out of fold (fit_probe)"}
    for split, rows in (("heldout5", rows5), ("heldout6", rows6)):
        result = json.loads((tmp_path / "with" / f"{split}.json").read_text())
        for row in load_rows(split):  # depictions keep their scores and get no probe score
            scores = result["scores"][f"{row.package}:{row.member_path}"]
            assert scores["centerface.face"] == 0.1
            assert ("open_nsfw.scene_person" in scores) == (row in rows)
        written += [result["scores"][f"{row.package}:{row.member_path}"]["open_nsfw.scene_person"] for row in rows]
    assert np.allclose(written, expected, atol=1e-6)


def test_in_sample_scores_are_refused_for_a_fusion_fit(tmp_path, capsys):
    _cached(tmp_path, "heldout5", 5)
    capsys.readouterr()
    with pytest.raises(SystemExit, match=r"^2$"):  # any exit passed, argparse's for another argument too
        fit_probe.main([str(tmp_path), str(tmp_path / "p.json"), "--splits=heldout5",
                        f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}",
                        f"--scores_out={tmp_path / 'with'}"])
    assert "out-of-fold scores need at least two splits" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"^2$"):
        fit_probe.main([str(tmp_path), str(tmp_path / "p.json"), "--splits=heldout5", f"--scores={tmp_path}"])
    assert "--scores and --scores_out go together" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_features_are_the_tensor_of_the_registered_model_on_the_photo_as_a_run_stores_it(tmp_path):
    """The real open_nsfw on real photographs: the tuning split's scikit-image members, from the wheel installed
    here (each checked against its labelled sha256), stored at 512 px as a run stores them."""
    import onnx
    import onnxruntime as ort
    import skimage

    from pipeline.detectors.preprocess import decode, to_tensor
    from pipeline.detectors.registry import load_registry
    from pipeline.evaluation import stored_as_a_run
    from pipeline.photo_sets.score import load_samples

    site = Path(skimage.__file__).parents[1]
    rows = [row for row in fitted_rows("tuning") if row.package == "scikit-image"
            and row.member_path in ("skimage/data/astronaut.png", "skimage/data/coffee.png", "skimage/data/rocket.jpg")]
    assert len(rows) == 3
    for row in rows:
        shutil.copy(site / row.member_path, tmp_path / row.file_name)
    got = fit_probe.embed(tmp_path, rows, "open_nsfw", "Reshape:0")
    spec = load_registry()["open_nsfw"]
    model = onnx.load(spec.file)
    model.graph.output.append(onnx.helper.make_tensor_value_info("Reshape:0", onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for vector, sample in zip(got, load_samples(tmp_path, rows), strict=True):
        tensor = to_tensor(decode(stored_as_a_run(sample, 512)), spec.input)[None]
        (expected,) = session.run(["Reshape:0"], {session.get_inputs()[0].name: tensor})
        assert vector.shape == (1024,) and np.allclose(vector, expected.reshape(-1), atol=1e-5)
    assert (got >= 0).all() and not np.allclose(got[0], got[1])


def test_a_cache_made_from_another_model_or_tensor_is_not_read(tmp_path, monkeypatch):
    """Same keys and width, other numbers: a cache whose source differs is made again (here: embed is called)."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    calls = []

    def fake_embed(photos, rows, detector, tensor, max_side=512, model_registry=None):
        calls.append((detector, tensor, max_side))
        return np.zeros((len(rows), 8))

    monkeypatch.setattr(fit_probe, "embed", fake_embed)
    args = [str(tmp_path), str(tmp_path / "p.json"), "--splits=heldout5,heldout6",
            f"--features={tmp_path / 'features'}"]
    fit_probe.main(args)
    assert calls == []  # the caches' source matches: read, not made
    fit_probe.main([*args, "--max_side=384"])
    assert calls == [("open_nsfw", "Reshape:0", 384)] * 2
    assert np.load(tmp_path / "features" / "heldout5.npz")["vectors"].sum() == 0  # made again, for 384 px


def test_out_of_fold_scores_cannot_stand_in_for_a_probe_files_scores(tmp_path):
    """evaluate --scores with the probe registry refuses fit_probe's files: their probe scores came from other fits
    than the registry's probe file."""
    from pipeline.detectors.registry import BUILTIN_REGISTRY, load_registry, select
    from pipeline.photo_sets.score import PhotoSetError, earlier_scores

    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    fit_probe.main([str(tmp_path), str(tmp_path / "p.json"), "--splits=heldout5,heldout6",
                    f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}",
                    f"--scores_out={tmp_path / 'with'}"])
    specs = [spec for spec in select(load_registry(str(BUILTIN_REGISTRY.parent / "candidate_probe_registry.json")),
                                     "default") if spec.name == "open_nsfw"]
    with pytest.raises(PhotoSetError, match=r"open_nsfw\.scene_person were not made by the probe files"):
        earlier_scores(tmp_path / "with" / "heldout5.json", fitted_rows("heldout5"), specs)


@pytest.mark.parametrize(("signum", "said"), STOPS)
@pytest.mark.parametrize("cut", ["probe.json", "with/heldout6.json"])
def test_a_fit_stopped_as_it_writes_a_file_leaves_it_as_it_was_and_says_what_it_wrote(tmp_path, signum, said, cut):
    """The probe and the --scores_out files were written in place: a stop during a write left half a file under the
    name (an earlier one lost), with a traceback (Ctrl-C) or -15 and no word (SIGTERM)."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    out, scores_out = tmp_path / "probe.json", tmp_path / "with"
    scores_out.mkdir()
    for earlier in (out, scores_out / "heldout6.json"):
        earlier.write_text('{"an": "earlier file"}\n')
    before = {**listing(tmp_path), **listing(scores_out)}
    done = stopped_writing(signum, tmp_path / cut, "pipeline.photo_sets.fit_probe", [
        str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6", "--c=0.1",
        f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}", f"--scores_out={scores_out}"])
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    files = [str(out), str(scores_out / "heldout5.json"), str(scores_out / "heldout6.json")]
    left = f"{', '.join(files)} not written (as they were)" if cut == "probe.json" else (
        f"{files[0]}, {files[1]} written (whole); {files[2]} not written (as it was)")
    assert done.stderr.strip().splitlines() == [f"fit_probe: stopped ({said}); it did not finish; {left}"]
    after = {**listing(tmp_path), **listing(scores_out)}
    assert after[cut.rpartition("/")[2]] == before[cut.rpartition("/")[2]]
    assert sorted(after) == sorted({*before, *(["heldout5.json"] if cut != "probe.json" else [])})  # no temporary


@pytest.mark.parametrize(("signum", "said"), STOPS)
def test_a_fit_stopped_right_after_its_probe_replaced_the_file_says_it_was_written(tmp_path, signum, said):
    """The rename is the commit point: a stop landing after it (the folder's fsync, the bookkeeping) said "not written
    (as it was)" of a probe file it had just replaced."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    out, scores_out = tmp_path / "probe.json", tmp_path / "with"
    out.write_text('{"an": "earlier file"}\n')
    done = stopped_writing(signum, out, "pipeline.photo_sets.fit_probe", [
        str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6", "--c=0.1",
        f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}", f"--scores_out={scores_out}"],
        when="renamed")
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    scores = f"{scores_out / 'heldout5.json'}, {scores_out / 'heldout6.json'}"
    assert done.stderr.strip().splitlines() == [
        f"fit_probe: stopped ({said}); it did not finish; {out} written (whole); {scores} not written (as they were)"]
    data = out.read_bytes()
    assert len(parse_probe("scene_person", str(out), hashlib.sha256(data).hexdigest(), data).weights) == 8
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary


@pytest.mark.parametrize("broken", ["a photograph without scores", "another split's file"])
def test_a_scores_folder_that_does_not_score_the_split_is_refused_before_the_fit(tmp_path, capsys, broken):
    """The probe's score is written into each photograph's scores: a file without one ended fit_probe with a KeyError's
    traceback after the fit, its probe file already written; another split's file (heldout6's under heldout5's name)
    was taken as it was."""
    rows, _ = _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    path = tmp_path / "scores" / "heldout5.json"
    result = json.loads(path.read_text())
    if broken == "another split's file":
        result["split"] = "heldout6"
    else:
        del result["scores"][f"{rows[3].package}:{rows[3].member_path}"]
    path.write_text(json.dumps(result))
    out = tmp_path / "probe.json"
    with pytest.raises(SystemExit) as ended:
        fit_probe.main([str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6",
                        f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}",
                        f"--scores_out={tmp_path / 'with'}"])
    said = capsys.readouterr().err
    assert ended.value.code == 2 and f"error: scores file {path}: " in said, said
    expected = "not heldout5" if broken == "another split's file" else "no scores for 1 of the split's photographs"
    assert expected in said
    assert not out.exists() and not (tmp_path / "with").exists()


def test_an_unknown_option_or_a_bad_value_is_one_line_and_exit_2(tmp_path, capsys):
    """argparse's usage line and then its error (seven lines) were what pass-pipeline says in one."""
    help_line = "(see `python -m pipeline.photo_sets.fit_probe --help`)"
    for argv, said in ((["--bogus"], f"unrecognized arguments: --bogus {help_line}"),
                       ([f"--scores={tmp_path}"], f"--scores and --scores_out go together {help_line}")):
        with pytest.raises(SystemExit) as ended:
            fit_probe.main([str(tmp_path), str(tmp_path / "p.json"), *argv])
        assert ended.value.code == 2
        assert capsys.readouterr().err.splitlines() == [f"fit_probe: error: {said}"]
    assert list(tmp_path.iterdir()) == []


LINK_SAID = ("is a symbolic link (to {to}): the file is written whole under its name, which would replace the link and "
             "leave the file it leads to as it was; give that file's own path")
DATASET_SAID = ("lies inside the dataset {tmp}/dataset, whose manifest does not list it (verify would refuse the "
                "dataset): write it outside")
# What each output is made into, and what fit_probe says of it: `{tmp}` the test's folder.
NO_OUTPUTS = {
    "probe a link": ("out {tmp}/probe.json " + LINK_SAID.format(to="{tmp}/kept.json")),
    "probe a folder": "out {tmp}/probe.json is a folder, not a file: not written",
    "probe in a missing folder": "out {tmp}/missing/probe.json: its folder {tmp}/missing does not exist: not written",
    "probe in a dataset": "out {tmp}/dataset/probe.json " + DATASET_SAID,
    "scores_out a file": ("--scores_out {tmp}/with/heldout5.json: {tmp}/with is a file, not a folder: not written"),
    "a scores_out file a link": ("--scores_out {tmp}/with/heldout5.json " + LINK_SAID.format(to="{tmp}/kept.json")),
    "a scores_out file a named pipe": "--scores_out {tmp}/with/heldout6.json is a named pipe, not a file: not written",
    "scores_out in a dataset": "--scores_out {tmp}/dataset/with/heldout5.json " + DATASET_SAID,
    "features a file": ("--features {tmp}/cache/heldout5.npz: {tmp}/cache is a file, not a folder: not written"),
    "a features cache a link": ("--features {tmp}/features/heldout5.npz "
                                + LINK_SAID.format(to="{tmp}/kept/heldout5.npz")),
    "a features cache a folder": "--features {tmp}/features/heldout6.npz is a folder, not a file: not written",
    "features in a dataset": "--features {tmp}/dataset/cache/heldout5.npz " + DATASET_SAID,
}


@pytest.mark.parametrize("case", NO_OUTPUTS)
def test_an_output_that_is_no_file_to_write_is_refused_before_the_fit(tmp_path, monkeypatch, capsys, case):
    """The probe, each --scores_out SPLIT.json and each --features SPLIT.npz were checked only as each was written,
    after minutes of features and the fit: a folder (or a file where --scores_out's or --features' folder should be) a
    traceback, a link replaced by the file (the one it led to left stale; a cache read through it first), a file in a
    dataset's folder one that made verify refuse the dataset. Each refused before the features, in one line naming
    the flag (parser.error's, as a refused scores file), exit 2, nothing written."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    out, scores_out, cache = tmp_path / "probe.json", tmp_path / "with", tmp_path / "features"
    (tmp_path / "kept.json").write_text('{"an": "earlier file"}\n')

    def a_dataset() -> Path:
        (tmp_path / "dataset").mkdir()
        (tmp_path / "dataset" / "manifest.json").write_text('{"files": []}\n')
        return tmp_path / "dataset"

    if case == "probe a link":
        out.symlink_to(tmp_path / "kept.json")
    elif case == "probe a folder":
        out.mkdir()
    elif case == "probe in a missing folder":
        out = tmp_path / "missing" / "probe.json"
    elif case == "probe in a dataset":
        out = a_dataset() / "probe.json"
    elif case == "scores_out a file":
        scores_out.write_text("a file\n")
    elif case.startswith("a scores_out file"):
        scores_out.mkdir()
        if case.endswith("a link"):
            (scores_out / "heldout5.json").symlink_to(tmp_path / "kept.json")
        else:
            os.mkfifo(scores_out / "heldout6.json")
    elif case == "scores_out in a dataset":
        scores_out = a_dataset() / "with"
    elif case == "features a file":
        cache = tmp_path / "cache"
        cache.write_text("a file\n")
    elif case == "a features cache a link":
        (tmp_path / "kept").mkdir()
        (cache / "heldout5.npz").rename(tmp_path / "kept" / "heldout5.npz")
        (cache / "heldout5.npz").symlink_to(tmp_path / "kept" / "heldout5.npz")
    elif case == "a features cache a folder":
        (cache / "heldout6.npz").unlink()
        (cache / "heldout6.npz").mkdir()
    else:
        cache = a_dataset() / "cache"
    before = {str(path): (path.lstat().st_mode, path.read_bytes() if path.is_file() else b"")
              for path in tmp_path.rglob("*") if not stat.S_ISFIFO(path.lstat().st_mode)}
    monkeypatch.setattr(fit_probe, "embed", lambda *a, **k: pytest.fail("features made although refused"))
    monkeypatch.setattr(fit_probe, "fit", lambda *a, **k: pytest.fail("fitted although refused"))
    with pytest.raises(SystemExit) as ended:
        fit_probe.main([str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6",
                        f"--features={cache}", f"--scores={tmp_path / 'scores'}", f"--scores_out={scores_out}"])
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"fit_probe: error: {NO_OUTPUTS[case].format(tmp=tmp_path)} (see `python -m pipeline.photo_sets.fit_probe "
        "--help`)"]
    assert {str(path): (path.lstat().st_mode, path.read_bytes() if path.is_file() else b"")
            for path in tmp_path.rglob("*") if not stat.S_ISFIFO(path.lstat().st_mode)} == before


def test_a_probe_file_name_that_becomes_a_folder_during_the_fit_is_refused_in_one_printable_line(tmp_path,
                                                                                               monkeypatch):
    """A name checked before the features can become no file during the fit (a folder made there): the refusal,
    raised as the probe is written, quoted the name as typed (its escapes sent to the terminal, its line break
    printing a forged line of its own), where the same refusal before the fit (parser.error's) is escaped. It is
    escaped as that is."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    out = tmp_path / "probe\x1b[2J\nfit_probe: written (whole)\u202e.json"
    a_folder_made_after_the_fit(monkeypatch, fit_probe, out)
    with pytest.raises(SystemExit) as refused:
        fit_probe.main([str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6",
                        f"--features={tmp_path / 'features'}"])
    assert refused.value.code == (f"fit_probe: {tmp_path}/probe\\x1b[2J\\nfit_probe: written (whole)\\u202e.json "
                                  "is a folder, not a file: not written")


@pytest.mark.parametrize("cache", ["no zip", "a compressed one", "pickled keys", "vectors of another shape"])
def test_a_features_cache_this_script_did_not_write_is_made_again_not_a_traceback(tmp_path, monkeypatch, capsys,
                                                                                  cache):
    """np.load read whatever was under the name: a file that is no .npz (or pickled data, which it refuses) ended
    fit_probe with a traceback, vectors not one per key with an IndexError's; a compressed one (np.savez writes none)
    was inflated whole, however far. Each is made again, with a line saying so."""
    rows, _ = _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    path = tmp_path / "features" / "heldout5.npz"
    keys = np.array([f"{r.package}:{r.member_path}" for r in rows])
    source = np.array(fit_probe.feature_source("open_nsfw", "Reshape:0", 512))
    if cache == "no zip":
        path.write_bytes(b"not a zip\n")
    elif cache == "a compressed one":
        np.savez_compressed(path, keys=keys, vectors=np.ones((len(rows), 8)), source=source)
    elif cache == "pickled keys":
        np.savez(path, keys=np.array(list(keys), dtype=object), vectors=np.ones((len(rows), 8)), source=source)
    else:
        np.savez(path, keys=keys, vectors=np.ones(len(rows)), source=source)
    calls = []

    def fake_embed(photos, rows, detector, tensor, max_side=512, model_registry=None):
        calls.append(len(rows))
        return np.zeros((len(rows), 8))

    monkeypatch.setattr(fit_probe, "embed", fake_embed)
    assert fit_probe.main([str(tmp_path), str(tmp_path / "p.json"), "--splits=heldout5,heldout6",
                           f"--features={tmp_path / 'features'}"]) == 0
    assert calls == [len(rows)]  # heldout6's cache read, heldout5's made again
    said = [line for line in capsys.readouterr().out.splitlines() if "features cache" in line]
    assert len(said) == 1 and said[0].startswith(f"fit_probe: {path} is no features cache this script wrote ("), said
    assert said[0].endswith("): made again")
    with np.load(path) as made:
        assert made["vectors"].sum() == 0 and list(made["keys"]) == list(keys)


def test_the_files_a_fit_names_on_its_lines_are_each_one_printable_line(tmp_path, monkeypatch, capsys):
    """Its lines (a features cache made again, the probe and the scores written) named each file as typed: a name's
    escapes reached the terminal and its line break printed a line of its own (`wrote probe.json: sha256 ...`, read
    as the probe written). Each is escaped as a refusal naming it is."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    forged = "\x1b[2J\nwrote probe.json\u202e"
    cache, out, scores_out = tmp_path / f"cache{forged}", tmp_path / f"p{forged}.json", tmp_path / f"with{forged}"
    (tmp_path / "features").rename(cache)
    (cache / "heldout5.npz").write_bytes(b"not a zip\n")
    monkeypatch.setattr(fit_probe, "embed", lambda photos, rows, *a, **k: np.zeros((len(rows), 8)))
    assert fit_probe.main([str(tmp_path), str(out), "--splits=heldout5,heldout6", f"--features={cache}",
                           f"--scores={tmp_path / 'scores'}", f"--scores_out={scores_out}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = "\\x1b[2J\\nwrote probe.json\\u202e"
    assert len(lines) == 3 and all(line.isprintable() for line in lines), lines
    assert lines[0].startswith(f"fit_probe: {tmp_path}/cache{shown}/heldout5.npz is no features cache "), lines
    assert lines[1].startswith(f"wrote {tmp_path}/p{shown}.json: sha256 "), lines
    assert lines[2] == (f"wrote open_nsfw.scene_person out of fold into {tmp_path}/with{shown}/SPLIT.json "
                        "(heldout5, heldout6)"), lines


def test_the_class_name_its_out_of_fold_line_names_is_one_printable_line(tmp_path, monkeypatch, capsys):
    """The line saying the out-of-fold scores were written names them `--detector.--class_name` as typed: a class
    named with ESC [2J, a right-to-left override and a line break printed its escape to the terminal and a forged
    `wrote probe.json` line of its own. It is one line, the name escaped as Python writes it in a string."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    evil = "scene\x1b[2J\u202e\nwrote probe.json"
    assert fit_probe.main([str(tmp_path), str(tmp_path / "probe.json"), "--splits=heldout5,heldout6",
                           f"--features={tmp_path / 'features'}", f"--scores={tmp_path / 'scores'}",
                           f"--scores_out={tmp_path / 'with'}", f"--class_name={evil}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.isprintable() for line in lines), lines
    assert lines[1] == (f"wrote open_nsfw.scene\\x1b[2J\\u202e\\nwrote probe.json out of fold into {tmp_path}/with/"
                        "SPLIT.json (heldout5, heldout6)"), lines


def test_a_features_cache_in_a_folder_one_may_only_read_is_read_not_refused(tmp_path):
    """A cache shared read-only (another user's folder of features) is only read when it holds every photograph:
    check_output's refusal of a folder one may not write in is for the outputs always written, not for this one.
    Run without root's capabilities (setpriv), which write in any folder."""
    _cached(tmp_path, "heldout5", 5)
    _cached(tmp_path, "heldout6", 6)
    out = tmp_path / "probe.json"
    done = run_in_a_folder_one_may_only_read(
        [sys.executable, "-m", "pipeline.photo_sets.fit_probe", str(tmp_path / "no_photos"), str(out),
         "--splits=heldout5,heldout6", f"--features={tmp_path / 'features'}"], tmp_path / "features")
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.exists() and sorted(os.listdir(tmp_path / "features")) == ["heldout5.npz", "heldout6.npz"]


MADE_AGAIN = ("import sys\nimport numpy as np\nfrom pipeline.photo_sets import fit_probe\n"
              "fit_probe.embed = lambda photos, rows, *a, **k: np.random.default_rng(1).random((len(rows), 8))\n"
              "sys.exit(fit_probe.main(sys.argv[1:]))")


def test_a_cache_that_misses_in_a_folder_one_may_only_read_is_used_and_said_not_kept(tmp_path):
    """A split missing from a cache shared read-only: its features were made (minutes) and then their write was a
    PermissionError traceback, the probe never fitted. The features are used, the probe written, and one line says
    the cache was not written."""
    _cached(tmp_path, "heldout5", 5)
    out, features = tmp_path / "probe.json", tmp_path / "features"
    done = run_in_a_folder_one_may_only_read(
        [sys.executable, "-c", MADE_AGAIN, str(tmp_path / "no_photos"), str(out), "--splits=heldout5,heldout6",
         f"--features={features}"], features)
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in done.stdout.splitlines() if "heldout6.npz" in line]
    assert said and said[0].startswith(f"fit_probe: {features / 'heldout6.npz'} not written ("), done.stdout
    assert said[0].endswith("): the features made are used, not kept"), said
    assert out.exists() and os.listdir(features) == ["heldout5.npz"]


@pytest.mark.parametrize("given", ["a registry it refuses", "a detector it does not name"])
def test_a_registry_it_refuses_or_a_detector_it_does_not_name_is_one_line_before_the_features(tmp_path, monkeypatch,
                                                                                            capsys, given):
    """--model_registry and --detector name the model whose tensor is read: a registry the registry refuses (a
    detector named with a dot, a line break and ESC, as one passed around with a model may be) ended fit_probe in
    RegistryError's traceback, and a --detector it does not name in a bare KeyError's, exit 1, where run and evaluate
    say each in one line, exit 2. Each is the script's one error line, escaped, before any feature is made."""
    from tests.test_photo_sets_pooled import a_registry_naming

    refused = given == "a registry it refuses"
    registry = a_registry_naming(tmp_path, "my.nsfw\x1b[2J\nwrote probe.json" if refused else "my_nsfw")
    monkeypatch.setattr(fit_probe, "embed", lambda *a, **k: pytest.fail("features made although refused"))
    out = tmp_path / "probe.json"
    with pytest.raises(SystemExit) as ended:
        fit_probe.main([str(tmp_path / "no_photos"), str(out), "--splits=heldout5",
                        f"--detector={'open_nsfw' if refused else 'my_nsfw.x'}", f"--model_registry={registry}"])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and err.count("\n") == 1 and err.rstrip("\n").isprintable(), err
    said = "must be a plain name" if refused else "--detector my_nsfw.x names no detector of the registry"
    assert err.startswith("fit_probe: error: ") and said in err, err
    assert not out.exists()
