"""The script behind a measurement in models/README.md ("Looked for": a tiny-person head taught on synthetic
composites) and docs/held-out-evaluation.md (2026-12-06; descriptive: it chose nothing, and every split it ran on is
spent). Kept so that
the figures can be made again; not part of the pipeline; tested for its refusal of an output it may not write and
for its arithmetic (tests/test_docs_measurements_tiny_head.py), not for its figures.

The question: can a small head over NanoDet-m's stride-8 features, taught on clean photographs with people pasted
into them 5-20 px tall, see the real tiny people that NanoDet's own person score misses? Steps:

    python -m pipeline.photo_sets.fetch DIR --split S        # tuning, heldout2, heldout7, heldout9
    python docs/measurements/tiny_head.py export DIR src/    # the person photographs of tuning and heldout2, as PNG
    python3.11 -m venv /tmp/mp && /tmp/mp/bin/pip install mediapipe==0.10.14 "numpy<2" pillow
    PYTHONPATH=. /tmp/mp/bin/python docs/measurements/tiny_head.py cut src/ cut/
    python docs/measurements/tiny_head.py build DIR cut/ train.npz        # composites on tuning's clean photos
    python docs/measurements/tiny_head.py fit train.npz head.npz
    python docs/measurements/tiny_head.py score DIR head.npz heldout7 heldout7.json       # and heldout9, heldout2
    python docs/measurements/tiny_head.py score DIR head.npz heldout2 synthetic.json --composites
    python docs/measurements/tiny_head.py report heldout7.json heldout9.json heldout2.json synthetic.json
    pass-pipeline evaluate --photos DIR --split S --fusion=none --json scores/S.json      # heldout2, heldout7, heldout9
    python docs/measurements/tiny_head.py add scores/S.json S.json out/S.json             # each of them
    python -m pipeline.photo_sets.cross_validate out/*.json --splits heldout2,heldout7,heldout9 --max_lost 0.15,0.2 \
        --features=centerface.face,nanodet_person.person,oidv4_person.person \
        --features=centerface.face,nanodet_person.person,oidv4_person.person,tiny_head.logreg_views   # and each key

`cut` runs MediaPipe's selfie segmentation (general model, the mediapipe 0.10.14 wheel; Apache-2.0; a library run
here, not a dependency) on each exported photograph and writes each connected part of its mask at least 48 px tall
as an RGBA cut-out; of those, the ones named in FULL (whole or most of a body) and BUST (head and shoulders) were
chosen by looking at them (the others are sky, foliage, a hand or a smear the mask took for a person). `build`
stores each of tuning's clean photographs as a run would (512 px), pastes 1-3 cut-outs 5-20 px tall into one copy
and one into another (JPEG again at quality 90), and runs NanoDet on the whole image and on 3 x 3 overlapping tiles
(each tile stretched to 416 x 416, as the model's input is): the 128 features of the stride-8 cell holding a pasted
person's centre are positives; cells of the clean photograph (random ones and those NanoDet scores highest) and
cells of the composites away from a pasted person are negatives. `fit` fits a logistic regression and a
one-hidden-layer perceptron (64 units) on them (scikit-learn, standardised features) and keeps their weights as
arrays. `score` gives every labelled photograph of a split (or, with --composites, each clean one and a copy with
one full-body cut-out pasted) the best value over cells of each head, and NanoDet's own best person probability, on
the whole image and on the whole image and its tiles. `report` prints, per file and score, the area under the curve
of tiny people (and person + body part) against clean photographs, and how many tiny people score above the value
that keeps 90% of the clean ones. `add` puts a split's scores into its `evaluate --json` file, for
`cross_validate` to fit the fused decision with each of them beside the default's features, leaving each split out
in turn.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SOURCES = ("tuning", "heldout2")  # the splits whose person photographs are cut out
FULL = (
    "heldout2__09ac938892018b59_1", "heldout2__0c2d2c66a89cd0fa_1", "heldout2__0fa5a0a9452b9dd0_1",
    "heldout2__24b22d2457207401_1", "heldout2__2e84a3e422bbf410_1", "heldout2__33160fd5aef7ee0d_1",
    "heldout2__4d87b56c8eb67bf1_1", "heldout2__4e597418fc1e1ffe_1", "heldout2__4f392f3c78cdf827_3",
    "heldout2__688d46544f5fd4f3_1", "heldout2__807755c0e8133d5f_1", "heldout2__861252e37121313b_1",
    "heldout2__a302be3bdd142b67_1", "heldout2__ae1fcb21f9d2f67b_1", "heldout2__b8098a1edc290db0_1",
    "heldout2__c213b2d21fc5f9e7_1", "tuning__b7e0bc6da6f9fd8b_1", "tuning__c02019c4979c191e_1",
    "tuning__b0793d2adda0fa6a_1", "tuning__88431cd9653ccd53_1", "heldout2__0a81a4a9ed52c9e6_1",
    "heldout2__10eec0937ab04641_1", "heldout2__214de98400270730_1", "heldout2__457102bc8a4d48a4_1",
    "heldout2__c002ea23afd9b517_2", "tuning__20ef5a10a55b0363_7", "heldout2__71edae0a30393d23_1",
    "heldout2__7c99e0faf9eb2cd9_1", "heldout2__a3c36ec3463aaa45_1", "heldout2__e984fb566a3c6c67_3",
    "heldout2__e9d96b2417cdd61e_1", "tuning__16d73869e3267a7d_1", "tuning__cd1286e5d7649bc4_1",
    "heldout2__28baaad05e0982d5_1")
BUST = (
    "heldout2__02765d3d2be4c70d_1", "heldout2__04c5fc11c9a4549f_1", "heldout2__10e657796eb80be1_1",
    "heldout2__1859352314a9f7d6_1", "heldout2__266f5be18f04fe3c_1", "heldout2__374f9b79a4c26452_1",
    "heldout2__384dcac0b1a74d60_1", "heldout2__39cb458b46f9d663_1", "heldout2__4f96390deffdce5a_1",
    "heldout2__5e86b616549008df_1", "heldout2__5f04576864963f14_1", "heldout2__63cc0883e2b111ee_1",
    "heldout2__66d474d8a38ba39e_1", "heldout2__680f6c82f8fa9c07_1", "heldout2__70e581c6fe40b06b_1",
    "heldout2__99321a0e74531a66_1", "heldout2__a23173fc9c129e4c_1", "heldout2__a52c39241eb2f86f_1",
    "heldout2__a91a7fec655b1989_1", "heldout2__b50e2034c71bc857_1", "heldout2__c25a1509d58b9447_1",
    "heldout2__c59024a17814b935_1", "heldout2__cfdfc795987fdf6e_1", "heldout2__d3d9cf59b0eafa3f_1",
    "heldout2__d5f3cb139b2d96b6_1", "heldout2__e1edc73fe560db2f_1", "heldout2__ebaf65bb8b201426_1",
    "heldout2__f10d58b2294918c0_1", "heldout2__f4e2d5cae628a371_1", "heldout2__f56f4d18a3f2362c_1",
    "tuning__a8ca6d734765703b_1", "tuning__f04384e609c6ac78_1")
FEATURES = "t_128_0"  # NanoDet-m's stride-8 head: the 128 features its person (and other classes') logits are read from
SIDE, CELLS = 416, 52  # the model's input side and its stride-8 grid (416 / 8)
GRID = 3  # 3 x 3 tiles: a 512 px photograph's tile (~220 px) is stretched ~1.9x to the input
HEIGHTS = (5, 20)  # pasted people's height in the stored 512 px image, as the labels' tiny people are
SCORES = ("nanodet_whole", "nanodet_views", "logreg_whole", "logreg_views", "mlp_whole", "mlp_views")


def views(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The whole image, then its GRID x GRID overlapping tiles, as (left, top, right, bottom) boxes."""
    from pipeline.detectors.preprocess import tile_boxes

    return [(0, 0, width, height), *tile_boxes(width, height, grid=GRID)]


def cell(box: tuple[int, int, int, int], x: float, y: float) -> tuple[int, int] | None:
    """The stride-8 cell (row, column) of the view `box` (stretched to SIDE x SIDE) that holds the point (x, y) of
    the image, or None where the view does not hold it."""
    left, top, right, bottom = box
    if not (left <= x < right and top <= y < bottom):
        return None
    return (min(CELLS - 1, int((y - top) * SIDE / (bottom - top) / 8)),
            min(CELLS - 1, int((x - left) * SIDE / (right - left) / 8)))


def paste(image: Image.Image, cutout: Image.Image, height: int, rng: random.Random) -> tuple[float, float]:
    """Pastes the RGBA cut-out `height` px tall at a random place below the image's top quarter (where people
    stand); its centre."""
    width = max(1, round(cutout.width * height / cutout.height))
    small = cutout.resize((width, height), Image.Resampling.LANCZOS)
    x = rng.randrange(0, max(1, image.width - width))
    top = image.height // 4
    y = rng.randrange(top, max(top + 1, image.height - height))
    image.paste(small, (x, y), small)
    return x + width / 2, y + height / 2


def head_probabilities(head: dict[str, np.ndarray], kind: str, features: np.ndarray) -> np.ndarray:
    """Each row's probability of a tiny person under the fitted head (`fit`'s arrays), without scikit-learn."""
    x = (features - head["mean"]) / head["scale"]
    if kind == "logreg":
        logit = x @ head["logreg_w"] + head["logreg_b"]
    else:
        logit = np.maximum(x @ head["mlp_w1"] + head["mlp_b1"], 0.0) @ head["mlp_w2"] + head["mlp_b2"]
    return 1.0 / (1.0 + np.exp(-logit.ravel()))


class NanoDet:
    """NanoDet-m as registered, with its stride-8 features as one more output."""

    def __init__(self) -> None:
        import onnx
        import onnxruntime as ort

        from pipeline.detectors.registry import load_registry

        self.spec = load_registry(None)["nanodet_person"]
        model = onnx.load(self.spec.file)
        model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), options)
        self.names = [output.name for output in self.session.get_outputs()]

    def __call__(self, image: Image.Image) -> tuple[np.ndarray, float, np.ndarray]:
        """(the cells' features, CELLS x CELLS x 128; the best person probability over the three strides; the
        stride-8 person probabilities, CELLS x CELLS)"""
        from pipeline.detectors.preprocess import to_tensor

        outputs = dict(zip(self.names, self.session.run(None, {"input_1:0": to_tensor(image, self.spec.input)[None]}),
                           strict=True))
        best = max(float(outputs[name][0, :, 0].max()) for name in ("Identity:0", "Identity_1:0", "Identity_2:0"))
        return (outputs[FEATURES][0].transpose(1, 2, 0), best,
                outputs["Identity:0"][0, :, 0].reshape(CELLS, CELLS))


def stored(sample: Any) -> Image.Image:
    from pipeline.evaluation import stored_as_a_run

    return Image.open(io.BytesIO(stored_as_a_run(sample, 512))).convert("RGB")


def as_jpeg(image: Image.Image) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def labelled(photos: Path, split: str, labels: tuple[str, ...]) -> list[tuple[Any, Any]]:
    from pipeline.photo_sets.fetch import load_rows
    from pipeline.photo_sets.score import load_samples

    rows = [row for row in load_rows(split) if row.label in labels]
    return list(zip(rows, load_samples(photos, rows), strict=True))


def export(args: argparse.Namespace) -> None:
    from pipeline.evaluation import stored_as_a_run

    args.out.mkdir(parents=True, exist_ok=True)
    for split in SOURCES:
        for row, sample in labelled(args.photos, split, ("person",)):
            Image.open(io.BytesIO(stored_as_a_run(sample, 1024))).convert("RGB").save(
                args.out / f"{split}__{row.sha256[:16]}.png")


def cut(args: argparse.Namespace) -> None:
    import cv2  # with mediapipe, in its own environment: see the module docstring
    import mediapipe  # type: ignore[import-not-found]

    segmenter = mediapipe.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.src.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        mask = segmenter.process(rgb).segmentation_mask
        count, parts, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8), 8)
        for part in range(1, count):
            x, y, width, height, area = stats[part]
            if height < 48 or area < 0.125 * width * height:
                continue
            alpha = np.clip(mask[y:y + height, x:x + width], 0, 1) * (parts[y:y + height, x:x + width] == part)
            Image.fromarray(np.dstack([rgb[y:y + height, x:x + width], (alpha * 255).astype(np.uint8)]),
                            "RGBA").save(args.out / f"{path.stem}_{part}.png")


def build(args: argparse.Namespace) -> None:
    rng = random.Random(0)
    full = [Image.open(args.cutouts / f"{name}.png").convert("RGBA") for name in FULL]
    bust = [Image.open(args.cutouts / f"{name}.png").convert("RGBA") for name in BUST]
    nanodet = NanoDet()
    positive, negative = [], []
    for _, sample in labelled(args.photos, "tuning", ("no_person",)):
        clean = stored(sample)
        for box in views(*clean.size):
            features, _, persons = nanodet(clean.crop(box))
            flat = features.reshape(-1, 128)
            negative += [flat[rng.sample(range(CELLS * CELLS), 40)], flat[np.argsort(persons.ravel())[-10:]]]
        for many in (True, False):
            image = clean.copy()
            centres = [paste(image, rng.choice(full if many or rng.random() < 0.6 else bust), rng.randint(*HEIGHTS),
                             rng) for _ in range(rng.randint(1, 3) if many else 1)]
            image = as_jpeg(image)
            for box in views(*image.size):
                features, _, _ = nanodet(image.crop(box))
                near: set[tuple[int, int]] = set()
                for x, y in centres:
                    if (held := cell(box, x, y)) is not None:
                        positive.append(features[held])
                        near |= {(held[0] + dr, held[1] + dc) for dr in range(-3, 4) for dc in range(-3, 4)}
                away = [i for i in range(CELLS * CELLS) if divmod(i, CELLS) not in near]
                negative.append(features.reshape(-1, 128)[rng.sample(away, 15)])
    write_arrays(args.out, positive=np.asarray(positive), negative=np.concatenate(negative))


def fit(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    with np.load(args.train, allow_pickle=False) as train:
        x = np.concatenate([train["positive"], train["negative"]]).astype(np.float64)
        y = np.r_[np.ones(len(train["positive"])), np.zeros(len(train["negative"]))]
    scaler = StandardScaler().fit(x)
    scaled = scaler.transform(x)
    logreg = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(scaled, y)
    mlp = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=200, random_state=0,
                        early_stopping=True).fit(scaled, y)
    write_arrays(args.out, mean=scaler.mean_, scale=scaler.scale_, logreg_w=logreg.coef_.T,
                 logreg_b=logreg.intercept_, mlp_w1=mlp.coefs_[0], mlp_b1=mlp.intercepts_[0], mlp_w2=mlp.coefs_[1],
                 mlp_b2=mlp.intercepts_[1])


def score(args: argparse.Namespace) -> None:
    with np.load(args.head, allow_pickle=False) as stored_head:
        head = {name: stored_head[name] for name in stored_head.files}
    full = [Image.open(args.cutouts / f"{name}.png").convert("RGBA") for name in FULL] if args.composites else []
    rng = random.Random(7)
    nanodet = NanoDet()
    photos: dict[str, dict[str, Any]] = {}
    for row, sample in labelled(args.photos, args.split, ("no_person",) if args.composites else
                                ("no_person", "tiny_person", "person", "body_part")):
        clean = stored(sample)
        versions = [("no_person", clean)]
        if args.composites:
            image = clean.copy()
            paste(image, rng.choice(full), rng.randint(*HEIGHTS), rng)
            versions = [("no_person", as_jpeg(clean)), ("tiny_person", as_jpeg(image))]
        elif row.label != "no_person":
            versions = [(row.label, clean)]
        for label, image in versions:
            best = []
            for box in views(*image.size):
                features, nanodet_best, _ = nanodet(image.crop(box))
                flat = features.reshape(-1, 128).astype(np.float64)
                best.append((nanodet_best, *(float(head_probabilities(head, kind, flat).max())
                                             for kind in ("logreg", "mlp"))))
            by_view = np.asarray(best)
            values: dict[str, float] = {}
            for i, name in enumerate(("nanodet", "logreg", "mlp")):
                values |= {f"{name}_whole": float(by_view[0, i]), f"{name}_views": float(by_view[:, i].max())}
            photos[f"{row.package}:{row.member_path}:{label}"] = {"label": label, **values}
    write_json(args.out, {"split": args.split, "composites": args.composites, "photos": photos})


class Refused(Exception):
    """An input a step cannot use: one line, `parser.error`'s."""


def add(args: argparse.Namespace) -> None:
    """The evaluate --json file with each photograph's scores of `score` added as tiny_head.* keys, for
    cross_validate --features. `Refused` for an evaluate file that is none, or scores of composites or of another
    split: `--composites` names each clean photograph twice (its pasted copy's scores were put on it, unsaid), and
    another split's names were a KeyError traceback."""
    from pipeline.photo_sets.scores_file import ScoresFileError, read_scores

    try:
        result = read_scores(args.evaluated)[1]
    except ScoresFileError as err:
        raise Refused(str(err)) from None
    scored = json.loads(args.scored.read_text())
    if scored.get("composites"):
        raise Refused(f"scored {args.scored} holds score --composites' values (a pasted copy of each clean photograph "
                      "under its name): give score's file of the split without --composites")
    if scored.get("split") != result["split"]:
        raise Refused(f"scored {args.scored} scores {str(scored.get('split'))[:40]}, not {result['split'][:40]} as "
                      f"{args.evaluated} does")
    for name, photo in scored["photos"].items():
        result["scores"][name.rsplit(":", 1)[0]].update({f"tiny_head.{key}": photo[key] for key in SCORES})
    write_json(args.out, result)


def report(args: argparse.Namespace) -> None:
    from pipeline.photo_sets.metrics import auc

    print("| file | tiny / clean | score | AUC tiny vs clean | AUC person + body part vs clean | keep 90% of clean: "
          "tiny caught (of them not by NanoDet's own score) |")
    for path in args.files:
        photos = list(json.loads(path.read_text())["photos"].values())
        clean = [photo for photo in photos if photo["label"] == "no_person"]
        tiny = [photo for photo in photos if photo["label"] == "tiny_person"]
        body = [photo for photo in photos if photo["label"] in ("person", "body_part")]

        for key in SCORES:
            caught = flagged(tiny, clean, key)
            print(f"| {path.name} | {len(tiny)} / {len(clean)} | {key} | "
                  f"{auc([p[key] for p in tiny], [p[key] for p in clean]):.3f} | "
                  f"{auc([p[key] for p in body], [p[key] for p in clean]):.3f} | "
                  f"{len(caught)} ({len(caught - flagged(tiny, clean, 'nanodet_whole'))}) |")


def flagged(tiny: list[dict[str, Any]], clean: list[dict[str, Any]], key: str) -> set[int]:
    """The tiny people (their indexes) scoring above the threshold that keeps 90% of the clean photographs."""
    from pipeline.photo_sets.metrics import keeping

    threshold = keeping(sorted(photo[key] for photo in clean), 0.9)
    return {i for i, photo in enumerate(tiny) if photo[key] > threshold}


def write_arrays(path: Path, **arrays: np.ndarray) -> None:
    from pipeline.io.whole_file import write_whole

    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stubs take the keywords for allow_pickle
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, out.getvalue())


def write_json(path: Path, value: Any) -> None:
    from pipeline.io.whole_file import write_whole

    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, json.dumps(value, indent=1).encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    step = commands.add_parser("export", help="the person photographs of SOURCES as PNG, 1,024 px")
    step.add_argument("photos", type=Path)
    step.add_argument("out", type=Path)
    step = commands.add_parser("cut", help="cut-outs by MediaPipe's selfie segmentation (its own environment)")
    step.add_argument("src", type=Path)
    step.add_argument("out", type=Path)
    step = commands.add_parser("build", help="composites' cell features, positives and negatives (.npz)")
    step.add_argument("photos", type=Path)
    step.add_argument("cutouts", type=Path)
    step.add_argument("out", type=Path)
    step = commands.add_parser("fit", help="the two heads' weights (.npz)")
    step.add_argument("train", type=Path)
    step.add_argument("out", type=Path)
    step = commands.add_parser("score", help="each photograph's best cell under each head, and NanoDet's (.json)")
    step.add_argument("photos", type=Path)
    step.add_argument("head", type=Path)
    step.add_argument("split")
    step.add_argument("out", type=Path)
    step.add_argument("--composites", action="store_true",
                      help="each clean photograph and a copy with one cut-out pasted, instead of the labelled ones")
    step.add_argument("--cutouts", type=Path, default=Path("cut"))
    step = commands.add_parser("add", help="an evaluate --json file with score's values added as tiny_head.* keys")
    step.add_argument("evaluated", type=Path, help="evaluate --json's file of the split")
    step.add_argument("scored", type=Path, help="score's file of the same split (not --composites)")
    step.add_argument("out", type=Path)
    step = commands.add_parser("report", help="areas under the curve and tiny people caught at 90%% kept")
    step.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    from pipeline.printable import said

    steps = {"export": export, "cut": cut, "build": build, "fit": fit, "score": score, "add": add, "report": report}

    def run_step() -> None:
        try:
            steps[args.command](args)
        except Refused as err:  # it quotes a file's text: said, as the outputs' refusal is
            parser.error(said(err))

    if args.command == "report":
        run_step()
        return
    from pipeline.io.whole_file import checked_then_run

    # checked before the work (minutes of NanoDet, MediaPipe's segmentation): a link, a folder in the way, a file
    # inside a dataset's folder; export's and cut's PNGs, named as they are made, go into a folder
    if args.command in ("export", "cut"):
        checked_then_run(parser, [], run_step, folders=[args.out])
    else:
        checked_then_run(parser, [args.out], run_step)


if __name__ == "__main__":
    main(sys.argv[1:])
