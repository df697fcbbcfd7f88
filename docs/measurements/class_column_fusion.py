"""The script behind "A sparse model over every class column" in docs/held-out-evaluation.md (2026-12-02):
whether a fused score that may read any of the 80 NanoDet and 23 OIDv4 class columns (and CenterFace's face
score), with an L1 penalty choosing the few that help, tells people from clean photographs better than the
default's three person/face scores. Spent splits only; not part of the pipeline and not tested. Needs
scikit-learn and scipy (the `eval` extra).

Input: the folder `docs/measurements/class_columns.py` writes (one file per split). Each split is left out
in turn: the model is fitted on the others with `fit_fusion`'s label weights (clean photographs half the total
weight, each human label a sixth), its threshold set to lose exactly `--max_lost` of the clean photographs it
was fitted on (as `fit_fusion --max_lost` does), and the left-out split decided by it; counts are pooled.

    python docs/measurements/class_column_fusion.py out/ --splits tuning,heldout,...,heldout9

Models: "three scores" (the default's features, L2 logistic: the reference, within a photo or two of
`cross_validate`), "signed L1" (any sign: a weight below 0 lets an animal lower the fused score) and
"non-negative L1" (every weight >= 0, as `fit_fusion` requires: only evidence for a person counts).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.photo_sets.fetch import load_rows

COLUMNS = (
    ["centerface.face"] + [f"nanodet_all.c{i}" for i in range(80)] + [f"oidv4_all.c{i}" for i in range(1, 24)]
)  # OIDv4's column 0 is its background
DEFAULT = ["centerface.face", "nanodet_all.c0", "oidv4_all.c4"]  # = nanodet_person.person, oidv4_person.person


class Classifier(Protocol):
    """What `left_out` uses of a model: scikit-learn's LogisticRegression, or NonNegativeL1 below."""

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> Classifier: ...

    def decision_function(self, x: np.ndarray) -> np.ndarray: ...


class NonNegativeL1:
    """Logistic regression with every weight >= 0 (the bias free) and an L1 penalty `lam * sum(w)`."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> NonNegativeL1:
        from scipy.optimize import minimize

        d, target, weight = x.shape[1], y.astype(float), sample_weight / sample_weight.sum()

        def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
            z = x @ p[:d] + p[d]
            residual = weight * (1.0 / (1.0 + np.exp(-z)) - target)
            value = float(np.sum(weight * (np.logaddexp(0.0, z) - target * z)) + self.lam * p[:d].sum())
            return value, np.concatenate([x.T @ residual + self.lam, [residual.sum()]])

        fitted = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=[(0, None)] * d + [(None, None)])
        self.coef, self.intercept = fitted.x[:d], fitted.x[d]
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept


def load(folder: Path, splits: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logits of every column, whether a human is there, the label, and the split index, per photograph
    (depictions take no part, as in `fit_fusion`)."""
    rows, labels, groups = [], [], []
    for index, split in enumerate(splits):
        scores = json.loads((folder / f"{split}.json").read_text())["scores"]
        for row in load_rows(split):
            name = f"{row.package}:{row.member_path}"
            if row.label == "depiction" or name not in scores:
                continue
            rows.append([scores[name][column] for column in COLUMNS])
            labels.append(row.label)
            groups.append(index)
    p = np.clip(np.array(rows), 1e-4, 1 - 1e-4)
    label = np.array(labels)
    return np.log(p / (1 - p)), label != "no_person", label, np.array(groups)


def label_weights(label: np.ndarray) -> np.ndarray:
    weight = np.where(label == "no_person", 0.5 / max(1, (label == "no_person").sum()), 0.0)
    for human in ("person", "tiny_person", "body_part"):
        weight[label == human] = (1 / 6) / max(1, (label == human).sum())
    return weight * len(weight)


def left_out(
    make: Callable[[], Classifier], x: np.ndarray, y: np.ndarray, label: np.ndarray, groups: np.ndarray, max_lost: float
) -> tuple[int, int, int]:
    """Pooled over the splits, each decided by the model fitted on the others: (caught, kept, tiny caught)."""
    caught = kept = tiny = 0
    weight = label_weights(label)
    for split in np.unique(groups):
        fit, out = groups != split, groups == split
        model = make().fit(x[fit], y[fit], sample_weight=weight[fit])
        clean = np.sort(model.decision_function(x[fit])[~y[fit]])[::-1]
        lose = int(np.floor(max_lost * len(clean)))
        threshold = (clean[lose] + clean[lose - 1]) / 2 if lose else clean[0] + 1e-9
        removed = model.decision_function(x[out]) > threshold
        caught += int(removed[y[out]].sum())
        kept += int((~removed[~y[out]]).sum())
        tiny += int(removed[label[out] == "tiny_person"].sum())
    return caught, kept, tiny


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path, help="class_columns.py's output folder")
    parser.add_argument("--splits", required=True)
    parser.add_argument("--max_lost", default="0.15,0.175,0.2")
    args = parser.parse_args()
    x, y, label, groups = load(args.scores, args.splits.split(","))
    default = [COLUMNS.index(column) for column in DEFAULT]
    models: list[tuple[str, Callable[[], Classifier], list[int]]] = [
        ("three scores (L2)", lambda: LogisticRegression(C=10, max_iter=2000), default),
        (
            "signed L1, C=0.03",
            lambda: LogisticRegression(C=0.03, l1_ratio=1, solver="liblinear"),
            list(range(len(COLUMNS))),
        ),
        (
            "signed L1, C=0.1",
            lambda: LogisticRegression(C=0.1, l1_ratio=1, solver="liblinear"),
            list(range(len(COLUMNS))),
        ),
        ("non-negative L1, 0.003", lambda: NonNegativeL1(0.003), list(range(len(COLUMNS)))),
        ("non-negative L1, 0.01", lambda: NonNegativeL1(0.01), list(range(len(COLUMNS)))),
    ]
    print(f"{y.sum()} photographs with a human ({(label == 'tiny_person').sum()} tiny people), {(~y).sum()} clean")
    for max_lost in (float(v) for v in args.max_lost.split(",")):
        for name, make, columns in models:
            caught, kept, tiny = left_out(make, x[:, columns], y, label, groups, max_lost)
            print(
                f"--max_lost={max_lost} {name:24s} caught {caught}, kept {kept}, tiny people caught {tiny}", flush=True
            )


if __name__ == "__main__":
    main()
