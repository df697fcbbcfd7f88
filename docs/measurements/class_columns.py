"""The script behind "Every class the default detectors already compute" in docs/held-out-evaluation.md
(2026-12-02): NanoDet (80 COCO classes) and OIDv4 (24 Open Images classes) score every class in the same
pass that gives their person score, so animal and person-context classes are features at no CPU cost.
Also OIDv4's person score on a 640 px working copy (the size a run downloads for --max_side 512, i.e.
detection before the resize). Kept so that the figures can be made again; not part of the pipeline and
not tested, but for its refusal of an output it may not write (tests/test_docs_measurements_class_columns.py).

It adds score keys to `evaluate --photos --json` files of the spent splits (one per split, made with the
default detectors), which `cross_validate --features=...` then reads:

    pass-pipeline evaluate --photos DIR --split S --fusion=none --json scores/S.json   # each spent split
    python docs/measurements/class_columns.py DIR scores/ out/ --splits tuning,heldout,...,heldout9
    python -m pipeline.photo_sets.cross_validate out/*.json --splits tuning,...,heldout9 --max_lost 0.15,0.175,0.2 \\
        --features=centerface.face,nanodet_person.person,oidv4_person.person,cols.not_animal

Keys added per photo (best over the whole image and, for OIDv4, its tiles, as a run scores them):
nanodet_all.c0 .. c79 and oidv4_all.c0 .. c23 (every column; c0 of NanoDet and c4 of OIDv4 are checked to
equal the registered person scores), oidv4_640.person, and the grouped features
cols.not_animal (1 - the best animal score of either: COCO bird..giraffe, Open Images Cattle, Cat, Dog;
written as "not" so that `fit_fusion`'s non-negative weights can use it), cols.nd_not_animal,
cols.oid_not_animal, cols.context (the best person-context object: COCO backpack, umbrella, handbag, tie,
suitcase, skis, snowboard, kite, skateboard, surfboard, tennis racket; Open Images Boot, High heels,
Footwear, Camera) and cols.oid_person_640_or_512 (the larger of the two OIDv4 person scores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.detectors.handler import RuntimeConfig, shared_session
from pipeline.detectors.preprocess import decode as decode_image
from pipeline.detectors.preprocess import to_tensor, views
from pipeline.detectors.registry import DetectorSpec, load_registry
from pipeline.evaluation import stored_as_a_run
from pipeline.io.whole_file import checked_then_run, write_whole
from pipeline.photo_sets.fetch import load_rows
from pipeline.photo_sets.score import load_samples

COCO_ANIMALS = range(14, 24)  # bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe
OID_ANIMALS = (6, 8, 20)  # Cattle, Cat, Dog (the label map's lines, counting its "???" background as 0)
COCO_CONTEXT = (24, 25, 26, 27, 28, 30, 31, 33, 36, 37, 38)
OID_CONTEXT = (2, 17, 19, 22)  # Boot, High heels, Footwear, Camera


def columns(spec: DetectorSpec, session, jpeg: bytes, tile_min_side: int) -> np.ndarray:
    """The best score of every class column over the views a run scores, as the registered decoder
    reads the person column (max over anchors and outputs, through a sigmoid where it applies one)."""
    names = [name for group in spec.decoder["outputs"].values() for name in group]
    best: np.ndarray | None = None
    for view in views(decode_image(jpeg), spec.tiles, tile_min_side):
        tensor = to_tensor(view, spec.input)
        outputs = session.run(names, {session.get_inputs()[0].name: tensor[None] if tensor.ndim == 3 else tensor})
        for values in outputs:
            values = values.astype(np.float32)
            if spec.decoder.get("sigmoid"):
                values = 1.0 / (1.0 + np.exp(-values))
            row = values.reshape(-1, values.shape[-1]).max(axis=0)
            best = row if best is None else np.maximum(best, row)
    assert best is not None  # for the type checker: views gives the whole image at least, the decoder an output
    return np.maximum(best, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="the fetched labelled photographs")
    parser.add_argument("scores", type=Path, help="folder of evaluate --json files, one per split: SPLIT.json")
    parser.add_argument("out", type=Path, help="where the files with the added keys are written")
    parser.add_argument("--splits", required=True)
    args = parser.parse_args()
    splits = args.splits.split(",")
    # checked before the scoring (minutes a split): a folder or a file in the way was a traceback after it, a link
    # written through, a file inside a dataset's folder one that made verify refuse the dataset
    checked_then_run(parser, [args.out / f"{split}.json" for split in splits], lambda: _add_columns(args, splits))


def _add_columns(args: argparse.Namespace, splits: list[str]) -> None:
    registry = load_registry(None)
    runtime = RuntimeConfig(intra_op_threads=1)
    nanodet, oidv4 = registry["nanodet_person"], registry["oidv4_person"]
    sessions = {spec.name: shared_session(spec, runtime) for spec in (nanodet, oidv4)}
    args.out.mkdir(parents=True, exist_ok=True)
    for split in splits:
        result = json.loads((args.scores / f"{split}.json").read_text())
        rows = [row for row in load_rows(split) if f"{row.package}:{row.member_path}" in result["scores"]]
        for row, sample in zip(rows, load_samples(args.photos, rows), strict=True):
            scores = result["scores"][f"{row.package}:{row.member_path}"]
            stored = stored_as_a_run(sample, 512)
            nd = columns(nanodet, sessions[nanodet.name], stored, runtime.tile_min_side)
            oid = columns(oidv4, sessions[oidv4.name], stored, runtime.tile_min_side)
            oid640 = columns(oidv4, sessions[oidv4.name], stored_as_a_run(sample, 640), runtime.tile_min_side)
            # The registered person scores must come out again, or this reads the outputs otherwise.
            assert abs(nd[0] - scores["nanodet_person.person"]) < 1e-5, (row.member_path, nd[0])
            assert abs(oid[4] - scores["oidv4_person.person"]) < 1e-5, (row.member_path, oid[4])
            added = {f"nanodet_all.c{i}": float(v) for i, v in enumerate(nd)}
            added |= {f"oidv4_all.c{i}": float(v) for i, v in enumerate(oid)}
            nd_animal, oid_animal = float(nd[list(COCO_ANIMALS)].max()), float(oid[list(OID_ANIMALS)].max())
            added |= {
                "oidv4_640.person": float(oid640[4]),
                "cols.not_animal": 1.0 - max(nd_animal, oid_animal),
                "cols.nd_not_animal": 1.0 - nd_animal,
                "cols.oid_not_animal": 1.0 - oid_animal,
                "cols.context": float(max(nd[list(COCO_CONTEXT)].max(), oid[list(OID_CONTEXT)].max())),
                "cols.oid_person_640_or_512": float(max(oid[4], oid640[4])),
            }
            scores.update(added)
        write_whole(args.out / f"{split}.json", json.dumps(result).encode())
        print(split, len(rows), flush=True)


if __name__ == "__main__":
    main()
