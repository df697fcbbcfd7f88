"""The script behind two measurements in docs/held-out-evaluation.md (2026-12-01, late): more features
for the fused score from NanoDet's person-score maps beyond their maximum, and from OpenCV's Haar body
cascades. Kept so that the figures can be made again; not part of the pipeline and not tested (the Haar
part needs `pip install opencv-python-headless==4.11.0.86`, which is not a dependency), but for its refusal
of an output it may not write (tests/test_docs_measurements_extra_features.py).

It adds score keys to `evaluate --photos --json` files of the spent splits (one per split, made with the
default detectors), which `cross_validate --features=...` then reads:

    pass-pipeline evaluate --photos DIR --split S --fusion=none --json scores/S.json   # each spent split
    python docs/measurements/extra_features.py DIR scores/ out/ --splits tuning,heldout,...,heldout7
    python -m pipeline.photo_sets.cross_validate out/*.json --splits tuning,...,heldout7 --max_lost 0.15,0.2,0.25 \\
        --features=centerface.face,ssdlite_person.person,open_nsfw.nsfw,nanodet_person.person,nd.s0_top3,nd.s1_top3,nd.s2_top3

Keys added: nd.top3, nd.top10 (mean of the best person cells over all strides), nd.n0.1/0.2/0.3 (cells at
or above, as n / (n + 5)), nd.s{0,1,2}_top3 and nd.s{0,1,2}_n (per stride); with --haar also
haar.{fullbody,upperbody,lowerbody}2_n (raw detections on the stored image upscaled 2x, as n / (n + 10))
and _max (the best stage score, through a sigmoid).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.detectors.handler import RuntimeConfig, shared_session
from pipeline.detectors.preprocess import decode as decode_image
from pipeline.detectors.preprocess import to_tensor
from pipeline.detectors.registry import load_registry, select
from pipeline.evaluation import stored_as_a_run
from pipeline.io.whole_file import checked_then_run, write_whole
from pipeline.photo_sets.fetch import load_rows
from pipeline.photo_sets.score import load_samples

NANODET_OUTPUTS = ["Identity:0", "Identity_1:0", "Identity_2:0"]  # strides 8, 16, 32 (column 0: person)
BODIES = ("fullbody", "upperbody", "lowerbody")


def nanodet_maps(session: Any, tensor: np.ndarray) -> dict[str, float]:
    outputs = session.run(NANODET_OUTPUTS, {session.get_inputs()[0].name: tensor[None] if tensor.ndim == 3 else tensor})
    per_stride = [np.sort(output[..., 0].reshape(-1))[::-1] for output in outputs]
    every = np.sort(np.concatenate(per_stride))[::-1]
    features = {"nd.top3": float(every[:3].mean()), "nd.top10": float(every[:10].mean())}
    for threshold in (0.1, 0.2, 0.3):
        count = int((every >= threshold).sum())
        features[f"nd.n{threshold}"] = count / (count + 5.0)
    for index, values in enumerate(per_stride):
        count = int((values >= 0.1).sum())
        features[f"nd.s{index}_top3"] = float(values[:3].mean())
        features[f"nd.s{index}_n"] = count / (count + 5.0)
    return features


def haar_bodies(cascades: dict[str, Any], rgb: np.ndarray) -> dict[str, float]:
    import cv2  # not a dependency: see the module docstring

    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    features = {}
    for body, cascade in cascades.items():
        boxes, _, weights = cascade.detectMultiScale3(grey, scaleFactor=1.1, minNeighbors=0, outputRejectLevels=True)
        best = float(np.asarray(weights).max()) if len(boxes) else -10.0
        features[f"haar.{body}2_n"] = len(boxes) / (len(boxes) + 10.0)
        features[f"haar.{body}2_max"] = 1 / (1 + math.exp(-best))
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="the fetched labelled photographs")
    parser.add_argument("scores", type=Path, help="folder of evaluate --json files, one per split: SPLIT.json")
    parser.add_argument("out", type=Path, help="where the files with the added keys are written")
    parser.add_argument("--splits", required=True)
    parser.add_argument("--haar", action="store_true", help="also the Haar cascades (~1.4 s of CPU per photo)")
    args = parser.parse_args()
    splits = args.splits.split(",")
    # checked before the scoring (~1.4 s a photo with --haar): a folder or a file in the way was a traceback after it,
    # a link written through, a file inside a dataset's folder one that made verify refuse the dataset
    checked_then_run(parser, [args.out / f"{split}.json" for split in splits], lambda: _add_features(args, splits))


def _add_features(args: argparse.Namespace, splits: list[str]) -> None:
    spec = next(s for s in select(load_registry(None), "default") if s.name == "nanodet_person")
    session = shared_session(spec, RuntimeConfig())
    cascades: dict[str, Any] = {}
    if args.haar:
        import cv2

        cv2.setNumThreads(1)
        cascades = {body: cv2.CascadeClassifier(cv2.data.haarcascades + f"haarcascade_{body}.xml") for body in BODIES}
    args.out.mkdir(parents=True, exist_ok=True)
    for split in splits:
        result = json.loads((args.scores / f"{split}.json").read_text())
        rows = load_rows(split)
        for row, sample in zip(rows, load_samples(args.photos, rows), strict=True):
            image = decode_image(stored_as_a_run(sample, 512))
            added = nanodet_maps(session, to_tensor(image, spec.input))
            if cascades:
                added |= haar_bodies(cascades, np.asarray(image))
            result["scores"][f"{row.package}:{row.member_path}"].update(added)
        write_whole(args.out / f"{split}.json", json.dumps(result).encode())
        print(split, len(rows), flush=True)


if __name__ == "__main__":
    main()
