"""Fits a context probe (`pipeline/detectors/probes.py`): a logistic on an intermediate tensor of a registered
detector, trained on the labelled photographs to tell "a human is in it" from clean.

    python -m pipeline.photo_sets.fit_probe PHOTOS models/scene_probe_v1.json --splits=tuning,heldout,... \\
        --detector=open_nsfw --tensor=Reshape:0 --c=0.003 --scores=scores/ --scores_out=scores_probe/

Each labelled photograph is stored as a run stores it (`--max_side`, 512 px) and put through the detector's
model as its registry entry says, with `--tensor` made an output; the features are cached as
`--features/SPLIT.npz` (keys, vectors, and what they were made from: a cache of another model, tensor or size is
made again) when a folder is given. The probe is scikit-learn's L2 logistic
(`--c`, the inverse penalty) on log(1 + feature), standardised; the file stores the weights folded with that
standardisation, so a worker computes one dot product. Images with a human are the positives, `no_person`
the negatives; depictions take no part, as in `fit_fusion`.

A fusion model that reads the probe's score must not be fitted on scores the probe made of photographs it
was trained on (it would trust the probe as much as the probe trusts itself). `--scores` (folders of
`evaluate --json` files named SPLIT.json) and `--scores_out` write those files again with
`DETECTOR.CLASS` added, each split's score from a probe trained on the other splits (out of fold): what
`fit_fusion` then reads. Every figure of such a probe measured on the labelled set is a figure on spent
splits; its worth is measured on the next held-out split (docs/held-out-evaluation.md).
"""

from __future__ import annotations

if __name__ == "__main__":  # its stops handled from before its imports on (io/starting.py)
    from pipeline.io.starting import script

    raise SystemExit(script("fit_probe", "pipeline.photo_sets.fit_probe"))

import argparse
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.detectors.probes import Probe, log1p_features, parse_probe
from pipeline.io.regular_files import open_local_regular
from pipeline.io.stopping import stops_saying
from pipeline.io.whole_file import TargetNotAFile, check_output, write_whole
from pipeline.photo_sets.fetch import HUMAN_LABELS, Row, fitted_rows
from pipeline.photo_sets.fit_fusion import files_left
from pipeline.photo_sets.scores_file import ScoresFileError, read_scores_folder
from pipeline.printable import log_printably, printable, said
from pipeline.usage import OneLineParser, split_list, usage_said

DEFAULT_C = 0.003
# Standardising divides by each feature's spread; a feature constant over the training photographs (a ReLU
# that never fires) would divide by 0.
MIN_SPREAD = 1e-6
# A features cache read is at most this large: 1024 float32 features of 100,000 photographs are 410 MB.
MAX_FEATURES_BYTES = 1 << 30


def embed(photos: Path, rows: Sequence[Row], detector: str, tensor: str, max_side: int = 512,
          model_registry: str | None = None) -> np.ndarray:
    """[len(rows), n]: `tensor` of `detector`'s model for each row's photograph as a run stores it, fed as the
    detector's registry entry says (its input and preprocessing, its checked file)."""
    import onnxruntime as ort

    from pipeline.detectors.handler import _prepared
    from pipeline.detectors.preprocess import decode, to_tensor
    from pipeline.detectors.registry import load_registry, read_model
    from pipeline.evaluation import stored_as_a_run
    from pipeline.photo_sets.score import load_samples

    spec = load_registry(model_registry)[detector]
    model = _prepared(read_model(spec), spec.input.dynamic_hw, extra_outputs=(tensor,))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    vectors = []
    for sample in load_samples(photos, list(rows)):
        image = to_tensor(decode(stored_as_a_run(sample, max_side)), spec.input)[None]
        (values,) = session.run([tensor], {feed: image})
        vectors.append(np.asarray(values, dtype=np.float32).reshape(-1))
    return np.array(vectors)


def fit(x: np.ndarray, y: np.ndarray, c: float = DEFAULT_C) -> tuple[np.ndarray, float]:
    """(weights, bias) on the untransformed features x, such that sigmoid(bias + log1p_features(x) @ weights) is
    the standardised L2 logistic's probability: the standardisation folded into the weights."""
    from sklearn.linear_model import LogisticRegression

    z = log1p_features(x)
    mean, spread = z.mean(axis=0), z.std(axis=0) + MIN_SPREAD
    model = LogisticRegression(C=c, max_iter=5000).fit((z - mean) / spread, y)
    weights = model.coef_[0] / spread
    return weights, float(model.intercept_[0] - weights @ mean)


def probability(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """The scores a worker's probe (probes.py) gives features x [n, d] with these weights."""
    return Probe("", "", "", "", "log1p", tuple(float(w) for w in weights), float(bias)).scores(x, len(x))


def out_of_fold(x: np.ndarray, y: np.ndarray, splits: np.ndarray, c: float = DEFAULT_C) -> np.ndarray:
    """Each photograph's probe score from a probe trained on the other splits only."""
    scores = np.zeros(len(y))
    for split in sorted(set(splits)):
        here = splits == split
        weights, bias = fit(x[~here], y[~here], c)
        scores[here] = probability(x[here], weights, bias)
    return scores


def probe_file(weights: np.ndarray, bias: float, tensor: str, fitted_on: str, c: float) -> bytes:
    body = {
        "_comment": "A context probe (pipeline/detectors/probes.py): python -m pipeline.photo_sets.fit_probe",
        "input": tensor,
        "transform": "log1p",
        "weights": [round(float(w), 9) for w in weights],
        "bias": round(bias, 9),
        "fitted_on": fitted_on,
        "options": {"c": c, "model": "scikit-learn LogisticRegression (L2) on standardised log1p features"},
    }
    return (json.dumps(body, indent=1) + "\n").encode()


def feature_source(detector: str, tensor: str, max_side: int, model_registry: str | None = None) -> str:
    """What a cached feature file was made from: the model file (its sha256), how it was fed and which tensor at
    which stored size. A cache made otherwise is not read (same keys and width, other numbers)."""
    from dataclasses import asdict

    from pipeline.detectors.registry import load_registry

    spec = load_registry(model_registry)[detector]
    return json.dumps({"detector": detector, "sha256": spec.sha256, "input": asdict(spec.input), "tensor": tensor,
                       "max_side": max_side}, sort_keys=True)


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a features cache as `_features` writes it (np.savez: keys, vectors, source); ValueError saying
    why a file under its name is none. np.load read whatever was there: a file that is no .npz, or pickled data, was
    a traceback, and a compressed one inflated however far its members said. Read without waiting (a named pipe put
    there), its members stored as np.savez stores them and no larger in all than MAX_FEATURES_BYTES."""
    try:
        with open_local_regular(str(path)) as handle:
            if (size := os.fstat(handle.fileno()).st_size) > MAX_FEATURES_BYTES:
                raise ValueError(f"{size} bytes, over {MAX_FEATURES_BYTES}")
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
            if any(member.compress_type != zipfile.ZIP_STORED for member in members):
                raise ValueError("compressed members: np.savez writes none")
            if sum(member.file_size for member in members) > MAX_FEATURES_BYTES:
                raise ValueError(f"members of more than {MAX_FEATURES_BYTES} bytes in all")
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in ("keys", "vectors", "source") if name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, MemoryError) as err:  # MemoryError: a header's shape
        raise ValueError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    keys, vectors = arrays.get("keys"), arrays.get("vectors")
    if keys is None or vectors is None or keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
        raise ValueError("not one vector for each key")
    return arrays


def _features(args: argparse.Namespace, split: str, rows: list[Row], written: list[str]) -> np.ndarray:
    cached = args.features / f"{split}.npz" if args.features else None
    keys = [f"{row.package}:{row.member_path}" for row in rows]
    source = feature_source(args.detector, args.tensor, args.max_side, args.model_registry)
    if cached is not None and cached.is_file():
        try:
            stored = read_cache(cached)
        except ValueError as err:
            print(f"fit_probe: {printable(str(cached))} is no features cache this script wrote ({said(err)}): made "
                  "again")
            stored = {}
        index = {str(key): i for i, key in enumerate(stored.get("keys", ()))}
        if "source" in stored and str(stored["source"]) == source and all(key in index for key in keys):
            return stored["vectors"][[index[key] for key in keys]]
    vectors = embed(args.photos, rows, args.detector, args.tensor, args.max_side, args.model_registry)
    if cached is not None:
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), vectors=vectors, source=np.array(source))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_whole(cached, buffer.getvalue(), written)
        except OSError as err:  # shared read-only, a read-only or full disk: a traceback after the features (minutes)
            print(f"fit_probe: {printable(str(cached))} not written ({printable(str(err.strerror or err))}): the "
                  "features made are used, not kept")
    return vectors


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Stopped (Ctrl-C, SIGTERM), it says in one line which of its files it wrote (each whole) and which
    it left as they were (`script_entry`): the probe, the scores and the features cache were written in place, and a
    stop during a write cut the file. Each counts as written from its rename on: a stop right after it was said to
    have left the file as it was. An output that is no file to write (`check_output`: a folder, a named pipe, a link, a
    missing folder, a file where --scores_out's or --features' folder should be, a dataset's folder) is refused
    before the features, exit 2; what becomes one meanwhile, in one line."""
    log_printably()  # a library's record one escaped line, as in pass-pipeline's log (printable.py)
    wanted: list[str] = []  # the probe and the scores files, once the arguments are read
    written: list[str] = []
    with stops_saying(lambda: _stopped(wanted, written)), usage_said("fit_probe"):
        try:
            return _main(argv, wanted, written)
        except TargetNotAFile as err:  # the name as typed, escaped as the same refusal before the fit is (usage_said)
            raise SystemExit(f"fit_probe: {said(err)}") from None


def _stopped(wanted: list[str], written: list[str]) -> str:
    """What a stopped fit_probe left: the files it wrote (a features cache among them), and those it did not."""
    unfinished = any(name not in written for name in wanted)
    return f"{'it did not finish; ' if unfinished else ''}{files_left(wanted, written)}"


def _main(argv: Sequence[str] | None, wanted: list[str], written: list[str]) -> int:
    parser = OneLineParser(prog="python -m pipeline.photo_sets.fit_probe", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="the labelled photographs (python -m pipeline.photo_sets.fetch)")
    parser.add_argument("out", type=Path, help="where to write the probe file")
    parser.add_argument("--splits", default="tuning", help="the splits to train on (each is then spent)")
    parser.add_argument("--detector", default="open_nsfw")
    parser.add_argument("--tensor", default="Reshape:0", help="the graph tensor the probe reads")
    parser.add_argument("--class_name", default="scene_person", help="the context class the scores are named by")
    parser.add_argument("--c", type=float, default=DEFAULT_C, help="the logistic's inverse L2 penalty")
    parser.add_argument("--max_side", type=int, default=512, help="the stored images' side, as the run's")
    parser.add_argument("--model_registry", default=None)
    parser.add_argument("--features", type=Path, default=None, help="a folder caching each split's features")
    parser.add_argument("--scores", type=Path, default=None, help="a folder of evaluate --json files, SPLIT.json")
    parser.add_argument("--scores_out", type=Path, default=None,
                        help="where to write them again with the out-of-fold probe score added")
    args = parser.parse_args(argv)
    splits = split_list(args.splits)
    if (args.scores is None) != (args.scores_out is None):
        parser.error("--scores and --scores_out go together")
    if args.scores is not None and len(splits) < 2:
        parser.error("out-of-fold scores need at least two splits (each scored by a probe trained on the others)")
    from pipeline.detectors.registry import RegistryError, load_registry

    try:  # read again for the features: a registry refused, or a --detector it does not name, was a traceback there
        registered = load_registry(args.model_registry)
    except RegistryError as err:
        parser.error(str(err))
    if args.detector not in registered:
        parser.error(f"--detector {args.detector} names no detector of the registry ({', '.join(registered)})")
    try:  # before the features and the fit (minutes): each was refused only as it was written, after them
        check_output("out", args.out)
        for split in splits:  # folders fit_probe makes: a file in the way of one was mkdir's traceback
            if args.scores_out is not None:
                check_output("--scores_out", args.scores_out / f"{split}.json", folder_made=True)
            if args.features is not None:  # read too: through a link, the cache the link leads to
                # Written only where it misses: a cache shared read-only is read, not refused.
                check_output("--features", args.features / f"{split}.npz", folder_made=True, always_written=False)
    except TargetNotAFile as err:
        parser.error(str(err))
    wanted.append(str(args.out))
    if args.scores_out is not None:
        wanted += [str(args.scores_out / f"{split}.json") for split in splits]
    rows = {split: fitted_rows(split) for split in splits}
    scored = {}
    if args.scores is not None:  # read before the fit (minutes of features): a missing one said only once it was done
        try:
            scored = {split: read_scores_folder(args.scores, split,
                                                [f"{row.package}:{row.member_path}" for row in rows[split]])
                      for split in splits}
        except ScoresFileError as err:
            parser.error(str(err))
    x = np.vstack([_features(args, split, rows[split], written) for split in splits])
    y = np.array([row.label in HUMAN_LABELS for split in splits for row in rows[split]], dtype=int)
    split_of = np.array([split for split in splits for _ in rows[split]])
    weights, bias = fit(x, y, args.c)
    fitted_on = (f"{' + '.join(splits)} of pipeline/photo_sets/labels.csv: {int(y.sum())} images with a human, "
                 f"{int((1 - y).sum())} no_person; {args.detector} {args.tensor} at {args.max_side} px")
    data = probe_file(weights, bias, args.tensor, fitted_on, args.c)
    parse_probe(args.class_name, str(args.out), hashlib.sha256(data).hexdigest(), data)  # what a registry will accept
    write_whole(args.out, data, written)  # noted in `written` from its rename on
    # each file named escaped, as a refusal names it: as typed, a line break printed a line of its own
    print(f"wrote {printable(str(args.out))}: sha256 {hashlib.sha256(data).hexdigest()} ({len(weights)} weights)")
    if args.scores is not None:
        name = f"{args.detector}.{args.class_name}"
        folded = out_of_fold(x, y, split_of, args.c)
        args.scores_out.mkdir(parents=True, exist_ok=True)
        for split in splits:
            result = scored[split]
            for row, score in zip(rows[split], folded[split_of == split], strict=True):
                result["scores"][f"{row.package}:{row.member_path}"][name] = round(float(score), 6)
            # Not a probe file's scores: `evaluate --scores` refuses them for a registry naming one.
            result["context_probes"] = {**(result.get("context_probes") or {}), name: "out of fold (fit_probe)"}
            write_whole(args.scores_out / f"{split}.json", (json.dumps(result, indent=1) + "\n").encode(), written)
        # the scores' name (--detector.--class_name) and the splits as typed, escaped as the folder is
        print(printable(f"wrote {name} out of fold into {args.scores_out}/SPLIT.json ({', '.join(splits)})"))
    return 0

