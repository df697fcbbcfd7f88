"""Small people on more pixels, or a better person detector? SSDLite (`ssdlite_person`) on the
TUNING split of the labelled package photographs, scored as a run scores the stored 512 px image
today (whole image + 2 x 2 overlapping tiles), against finer grids and larger working copies, and
against the opt-in NanoDet-m (`nanodet_person`, whole image). Each variant's threshold is set on its own
scores so that it keeps the same share of the tuning photos without a human; at that keep-rate
its recall is printed for all photos with a human and for tiny people apart, with the views and
CPU milliseconds per image. A working copy never upscales: a 320 px original stays 320 px.

Tuning split only (the held-out splits play no part here): a variant chosen from this table must
be measured on held-out photographs before it becomes a default.

    python -m pipeline.photo_sets.fetch DIR --split tuning
    .venv/bin/python -m benchmarks.working_copy --photos DIR [--keep 0.9,0.95] [--variants ssdlite_person:1024:4]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import time
from contextlib import nullcontext
from pathlib import Path

from PIL import Image

from pipeline.detectors import preprocess
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import load_registry
from pipeline.evaluation import score_set
from pipeline.photo_sets.fetch import load_rows
from pipeline.photo_sets.score import PhotoSetError, load_samples
from pipeline.usage import OneLineParser, usage_said

# detector:working copy's longest side:tile grid (0 = the whole image only). Today's first. Not run
# unless asked: ssdlite_person:1024:4 (17 views per image, ~3 s each on one core).
VARIANTS = "ssdlite_person:512:2,ssdlite_person:512:3,ssdlite_person:768:3,nanodet_person:512:0"


def threshold_keeping(clean: list[float], keep: float) -> float:
    """The lowest threshold under which at least `keep` of the clean scores fall (a photo is removed
    at score >= threshold)."""
    ranked = sorted(clean)
    index = min(len(ranked) - 1, max(0, round(keep * len(ranked)) - 1))
    return ranked[index] + 1e-9


def score_variant(samples: list, detector: str, max_side: int, grid: int) -> tuple[list[float], float, int]:
    """Each sample's best score of the detector's class (person, face) over its views, CPU seconds, and the
    views scored."""
    spec = dataclasses.replace(load_registry()[detector], tiles=grid > 0)
    defaults = preprocess.tile_boxes.__defaults__
    preprocess.tile_boxes.__defaults__ = (max(grid, 1), preprocess.TILE_OVERLAP)  # this benchmark's variable
    try:
        start = time.process_time()
        scores = score_set(samples, [spec], RuntimeConfig(intra_op_threads=1), max_side)
        seconds = time.process_time() - start
    finally:
        preprocess.tile_boxes.__defaults__ = defaults
    views = 0
    for sample in samples:
        with Image.open(io.BytesIO(sample.original)) if sample.original else nullcontext(sample.image) as img:
            size = img.size  # the header's, without decoding the file
        copy_side = min(max_side, max(size))  # the working copy's longest side (never upscaled)
        views += 1 + (grid * grid if preprocess.tiled((copy_side, copy_side), spec.tiles, RuntimeConfig().tile_min_side)
                      else 0)  # the handler's own rule for whether an image is tiled
    return [score[spec.score_name(spec.classes[0])] for score in scores], seconds, views  # its one class


def _keeps(text: str) -> list[float]:
    """--keep: keep-rates within 0..1 (a word or 95 was a traceback, or a threshold past every score)."""
    try:
        keeps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated numbers") from None
    if not keeps or not all(0.0 <= keep <= 1.0 for keep in keeps):
        raise argparse.ArgumentTypeError(f"each keep-rate must be within 0..1, not {text}")
    return keeps


def _variants(text: str) -> list[tuple[str, int, int]]:
    """--variants: detector:longest side:grid each (a variant without its side or grid was a traceback after the
    photographs were read)."""
    variants = []
    for variant in (part.strip() for part in text.split(",") if part.strip()):
        detector, *numbers = variant.split(":")
        try:
            side, grid = map(int, numbers)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{variant!r} is not detector:longest side:grid") from None
        if not detector or side < 1 or grid < 0:
            raise argparse.ArgumentTypeError(f"{variant!r}: a detector, a side of at least 1 and a grid of at least 0")
        variants.append((detector, side, grid))
    if not variants:
        raise argparse.ArgumentTypeError("no variant given")
    return variants


@usage_said("working_copy")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.working_copy", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="the fetched tuning photographs")
    parser.add_argument("--keep", type=_keeps, default=[0.9, 0.95],
                        help="keep-rates on clean tuning photos to compare at, comma-separated (each in 0..1)")
    parser.add_argument("--variants", type=_variants, default=_variants(VARIANTS),
                        help="detector:longest side:grid, comma-separated")
    args = parser.parse_args()
    rows = [row for row in load_rows("tuning") if row.label != "depiction"]
    try:
        samples = load_samples(Path(args.photos), rows)
    except PhotoSetError as err:  # photographs not fetched there: a traceback
        parser.error(str(err))
    human = [i for i, row in enumerate(rows) if row.has_human]
    tiny = [i for i, row in enumerate(rows) if row.label == "tiny_person"]
    clean = [i for i, row in enumerate(rows) if not row.has_human]
    print(f"tuning split: {len(rows)} photographs, {len(human)} with a human ({len(tiny)} tiny people), "
          f"{len(clean)} without")
    keeps = args.keep
    header = "".join(f" | recall at keep {k:.0%}: all / tiny" for k in keeps)
    print(f"| detector, working copy, grid | views per image | CPU ms per image (copy + views){header} |")
    for detector, max_side, grid in args.variants:
        scores, seconds, views = score_variant(samples, detector, max_side, grid)
        cells = []
        for keep in keeps:
            cut = threshold_keeping([scores[i] for i in clean], keep)
            found = sum(scores[i] >= cut for i in human)
            found_tiny = sum(scores[i] >= cut for i in tiny)
            cells.append(f" | {found}/{len(human)} ({found / len(human):.0%}) / {found_tiny}/{len(tiny)} "
                         f"({found_tiny / len(tiny):.0%}) at {cut:.3f}")
        tiles = f"{grid} x {grid}" if grid else "whole image"
        print(f"| {detector}, {max_side} px, {tiles} | {views / len(rows):.1f} | {1000 * seconds / len(rows):.0f}"
              f"{''.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
