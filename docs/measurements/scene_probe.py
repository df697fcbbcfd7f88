"""The script behind "A scene probe on open_nsfw's features" in docs/held-out-evaluation.md (2026-12-02):
whether a linear classifier on the last features of open_nsfw (a ResNet-50 every default run already runs on
each photo, for nsfw), trained on the labelled photographs to tell "a human is in it" from clean, adds to the
default's fused score when it is one more feature of it. It would cost no inference: the features are an
intermediate tensor of the pass open_nsfw makes anyway. Spent splits only; the measurement is not part of the
pipeline and not tested (the probe it led to is: `pipeline/detectors/probes.py`, `pipeline/photo_sets/fit_probe.py`),
but for `embed`'s refusal of an output it may not write (tests/test_docs_measurements_scene_probe.py). Needs
scikit-learn (the `eval` extra).

    python docs/measurements/scene_probe.py embed PHOTOS features/ --splits tuning,heldout,...,heldout10
    pass-pipeline evaluate --photos PHOTOS --split S --fusion=none --json scores/S.json \\
        --detectors=centerface,open_nsfw,nanodet_person,oidv4_person            (each split)
    python docs/measurements/scene_probe.py cv features/ scores/ --splits tuning,...,heldout10 --pool smax

`embed` stores each photograph as a run stores it (512 px), preprocesses it exactly as the open_nsfw entry
says, and keeps two 1024-vectors of the last block: its global average (`pooled`, what open_nsfw's own
classifier reads) and its maximum over the 7 x 7 positions (`smax`: a small thing in one place is not averaged
away). `cv` leaves each split out in turn, nested so that no score any fit reads was made by a probe that saw
its photo: the probe (an L2 logistic on log(1 + feature), standardised) is trained on the other splits and
scores the left-out one; the probe's score of each other split's photographs, used to fit the fused model, comes
from a probe trained on the splits other than both. The fused model is `fit_fusion`'s (`cross_validate`'s
`_fit`) over the default's three scores (or `--fused`), with and without the probe's; counts are pooled over
the splits. The candidate's class columns with the probe:

    pass-pipeline evaluate ... --model_registry=models/candidate_columns_registry.json \
        --detectors=nanodet_person,oidv4_person --json columns/S.json                  (each split)
    python docs/measurements/scene_probe.py cv features/ scores/ columns/ --splits ... --max_lost=0.15 \
        --fused=centerface.face,nanodet_person.person,oidv4_person.person,nanodet_person.bus,...
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.io.whole_file import checked_then_run, write_whole
from pipeline.photo_sets.cross_validate import Counts, Setting, _fit, decided
from pipeline.photo_sets.fetch import HUMAN_LABELS, Row, load_rows
from pipeline.photo_sets.fit_fusion import DEFAULT_FEATURES, labelled_scores

# The last block's output in open_nsfw's graph (NCHW, 1024 x 7 x 7) and its global average (1024).
LAST_BLOCK, POOLED = "Relu_48:0", "Reshape:0"
PROBE = "scene_probe.person"


def embed(photos: Path, out: Path, splits: Sequence[str]) -> None:
    import onnx
    import onnxruntime as ort

    from pipeline.detectors.preprocess import decode, to_tensor
    from pipeline.detectors.registry import load_registry, read_model
    from pipeline.evaluation import stored_as_a_run
    from pipeline.photo_sets.score import load_samples

    spec = load_registry()["open_nsfw"]
    model = onnx.load_from_string(read_model(spec))  # sha256-checked, as a run reads it
    for name in (POOLED, LAST_BLOCK):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    out.mkdir(parents=True, exist_ok=True)
    for split in splits:
        rows = load_rows(split)
        keys, pooled, smax = [], [], []
        for sample in load_samples(photos, rows):
            tensor = to_tensor(decode(stored_as_a_run(sample, 512)), spec.input)[None]
            mean, block = session.run([POOLED, LAST_BLOCK], {feed: tensor})
            keys.append(sample.name)
            pooled.append(mean[0])
            smax.append(block[0].reshape(block.shape[1], -1).max(axis=1))
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), pooled=np.array(pooled), smax=np.array(smax))
        write_whole(out / f"{split}.npz", buffer.getvalue())  # as fit_probe writes its features: whole or not at all
        print(f"{split}: {len(keys)} photographs", flush=True)


class Probe:
    """Each labelled photograph's features, and probes trained on some splits scoring others."""

    def __init__(self, features: Path, splits: Sequence[str], pool: str, c: float) -> None:
        parts = [np.load(features / f"{split}.npz") for split in splits]
        keys = [str(key) for part in parts for key in part["keys"]]
        vectors = [np.hstack([part[p] for p in (("pooled", "smax") if pool == "both" else (pool,))]) for part in parts]
        self.x = np.log1p(np.maximum(np.vstack(vectors), 0.0))
        self.row = {key: index for index, key in enumerate(keys)}
        self.split = np.array([split for split, part in zip(splits, parts, strict=True) for _ in part["keys"]])
        labels = {f"{row.package}:{row.member_path}": row.label for split in splits for row in load_rows(split)}
        self.y = np.array([labels[key] in HUMAN_LABELS for key in keys], dtype=int)
        self.used = np.array([labels[key] != "depiction" for key in keys])  # depictions teach neither way
        self.c = c

    def scores(self, trained_without: set[str], rows: Sequence[Row]) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression

        train = self.used & ~np.isin(self.split, sorted(trained_without))
        mean, spread = self.x[train].mean(axis=0), self.x[train].std(axis=0) + 1e-6
        model = LogisticRegression(C=self.c, max_iter=3000).fit((self.x[train] - mean) / spread, self.y[train])
        index = [self.row[f"{row.package}:{row.member_path}"] for row in rows]
        return model.predict_proba((self.x[index] - mean) / spread)[:, 1]


def with_probe(scores: Sequence[dict[str, float]], probe: np.ndarray) -> list[dict[str, float]]:
    return [{**one, PROBE: float(value)} for one, value in zip(scores, probe, strict=True)]


def leave_one_out(data: dict[str, tuple[list[Row], list[dict[str, float]]]], probe: Probe | None,
                  setting: Setting) -> Counts:
    total = Counts(0, 0, 0, 0)
    for left_out, (test_rows, test_scores) in data.items():
        rows: list[Row] = []
        scores: list[dict[str, float]] = []
        for split, (some_rows, some_scores) in data.items():
            if split == left_out:
                continue
            rows += some_rows
            scores += (some_scores if probe is None else
                       with_probe(some_scores, probe.scores({left_out, split}, some_rows)))
        if probe is not None:
            test_scores = with_probe(test_scores, probe.scores({left_out}, test_rows))
        total = total + decided(test_rows, test_scores, _fit(rows, scores, setting))
    return total


def merged(folders: Sequence[Path], split: str) -> dict:
    """One split's `evaluate --json` results from several folders as one: each photo's scores from all of them
    (a later folder adds classes, e.g. the candidate registry's context columns)."""
    results = [json.loads((folder / f"{split}.json").read_text()) for folder in folders]
    scores = {key: {name: value for result in results for name, value in result["scores"][key].items()}
              for key in results[0]["scores"]}
    return {**results[0], "scores": scores}


def cross_validate(features: Path, scores: Sequence[Path], splits: Sequence[str], pool: str, c: float,
                   losses: Sequence[float], base: tuple[str, ...]) -> None:
    data = {split: labelled_scores(merged(scores, split), base) for split in splits}
    probe = Probe(features, splits, pool, c)
    for max_lost in losses:
        lines = []
        for name, used, features_set in (("without", None, base),
                                         (f"+probe({pool}, C={c})", probe, (*base, PROBE))):
            counts = leave_one_out(data, used, Setting(tuple(features_set), max_lost=max_lost))
            lines.append(f"{name} {counts.caught}/{counts.humans} caught, {counts.kept}/{counts.clean} kept")
        print(f"max_lost={max_lost}: " + "; ".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser("embed")
    first.add_argument("photos", type=Path)
    first.add_argument("out", type=Path)
    second = commands.add_parser("cv")
    second.add_argument("features", type=Path)
    second.add_argument("scores", type=Path, nargs="+",
                        help="folders of evaluate --json files named SPLIT.json (several: each photo's scores merged)")
    second.add_argument("--fused", default=",".join(DEFAULT_FEATURES),
                        help="the fused score's features, besides the probe")
    second.add_argument("--pool", choices=("pooled", "smax", "both"), default="smax")
    second.add_argument("--c", type=float, default=0.01, help="the probe's inverse L2 penalty")
    second.add_argument("--max_lost", default="0.15,0.175,0.2,0.25")
    for command in (first, second):
        command.add_argument("--splits", required=True)
    args = parser.parse_args()
    splits = args.splits.split(",")
    if args.command == "embed":
        # checked before the photographs pass through open_nsfw (minutes a split): a folder or a file in the way was
        # a traceback after it, a link written through, a file inside a dataset's folder one that made verify refuse
        # the dataset
        checked_then_run(first, [args.out / f"{split}.npz" for split in splits],
                         lambda: embed(args.photos, args.out, splits))
    else:
        cross_validate(args.features, args.scores, splits, args.pool, args.c,
                       [float(value) for value in args.max_lost.split(",")], tuple(args.fused.split(",")))


if __name__ == "__main__":
    main()
