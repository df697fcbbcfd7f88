"""What decoding JPEGs at reduced DCT scale (`ImageConfig.draft_supersample`) does to the stored
image and its pHash, and what it saves, against decoding every JPEG at full size.

    .venv/bin/python -m benchmarks.draft_quality [--images 120]

Rules compared, each to the full decode (`draft_supersample=0`, the best the resize can do):
  - "box (before)": the rule up to 2026-11-30, `draft("RGB", (max_side, max_side))`, which reduces
    only when *both* sides are at least twice `max_side`;
  - "2x": the smallest scale still >= 2x the stored size on both sides (the default);
  - "1x": the smallest scale still >= the stored size (no supersample left for the Lanczos resize).
Images: the benchmark corpus (1024 px wide crops, stored at 512 px) and the bundled demo
photographs (300-1000 px) stored at 256 and 128 px, where the drafts take effect. Prints, per rule
and image set, the pixel differences of the stored JPEGs once decoded (max and mean absolute,
PSNR), how many pHashes moved and by how many bits at most, and ms per image for `normalise`.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

import imagehash
import numpy as np
from PIL import Image

from benchmarks import arguments
from benchmarks.corpus import distinct_photos
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.stages import image as image_stage
from pipeline.stages.image import ImageConfig, Normalised, normalise
from pipeline.usage import OneLineParser, usage_said


class _DraftRule(Protocol):
    """A rule in place of the image stage's `_draft_scale`, called as it is (its parameters by the same names)."""

    def __call__(self, width: int, height: int, cfg: ImageConfig) -> int: ...


def _box_rule(width: int, height: int, cfg: ImageConfig) -> int:
    """The scale the old `draft("RGB", (max_side, max_side))` picked."""
    scale = min(width // cfg.max_side, height // cfg.max_side)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


@contextmanager
def _draft_rule(rule: _DraftRule | None) -> Iterator[None]:
    original = image_stage._draft_scale
    image_stage._draft_scale = rule or original
    try:
        yield
    finally:
        image_stage._draft_scale = original


def _pixels(result: Normalised) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.jpeg)).convert("RGB"), dtype=np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(255 ** 2 / mse) if mse else math.inf


def _encoding_psnr(raws: list[bytes], reference: list[Normalised]) -> float:
    """Mean PSNR of the stored JPEGs against the resized pixels they encode (what JPEG itself loses)."""
    psnrs = []
    for raw, ref in zip(raws, reference, strict=True):
        rgb = Image.open(io.BytesIO(raw)).convert("RGB")
        resized = rgb.resize((ref.width, ref.height), Image.Resampling.LANCZOS) if rgb.size != (ref.width,
                                                                                                  ref.height) else rgb
        psnrs.append(_psnr(np.asarray(resized, dtype=np.float64), _pixels(ref)))
    return float(np.mean(psnrs))


def _timed_results(raws: list[bytes], cfg: ImageConfig) -> tuple[list[Normalised], float]:
    start = time.perf_counter()
    results = [normalise(raw, cfg) for raw in raws]
    return results, 1000 * (time.perf_counter() - start) / len(raws)


def compare(name: str, raws: list[bytes], cfg: ImageConfig) -> None:
    reference, reference_ms = _timed_results(raws, replace(cfg, draft_supersample=0))
    print(f"\n{name}: {len(raws)} images stored at {cfg.max_side} px; full decode {reference_ms:.1f} ms/image; "
          f"yardstick: JPEG q{cfg.jpeg_quality} encoding itself, PSNR mean {_encoding_psnr(raws, reference):.1f}")
    print(f"   {'rule':14s} {'drafted':>8s} {'ms/img':>7s} {'max |d|':>8s} {'mean |d|':>9s} {'PSNR min':>9s} "
          f"{'PSNR mean':>10s} {'pHash moved':>12s} {'max bits':>9s}")
    rules: list[tuple[str, _DraftRule | None, int]] = [("box (before)", _box_rule, 2), ("2x", None, 2), ("1x", None, 1)]
    for label, rule, supersample in rules:
        with _draft_rule(rule):
            results, ms = _timed_results(raws, replace(cfg, draft_supersample=supersample))
        drafted = sum(result.jpeg != ref.jpeg for result, ref in zip(results, reference, strict=True))
        mean_diffs: list[float] = []
        max_diff, psnrs, moved, max_bits = 0.0, [], 0, 0
        for result, ref in zip(results, reference, strict=True):
            if result.jpeg == ref.jpeg:
                continue
            if (result.width, result.height) != (ref.width, ref.height):
                print(f"   {label}: stored size {result.width}x{result.height} vs {ref.width}x{ref.height}")
                continue
            diff = np.abs(_pixels(result) - _pixels(ref))
            max_diff, mean_diffs = max(max_diff, float(diff.max())), [*mean_diffs, float(diff.mean())]
            psnrs.append(_psnr(_pixels(result), _pixels(ref)))
            bits = imagehash.hex_to_hash(result.phash) - imagehash.hex_to_hash(ref.phash)
            moved, max_bits = moved + (bits > 0), max(max_bits, bits)
        if not psnrs:
            print(f"   {label:14s} {drafted:8d} {ms:7.1f}   (identical to the full decode)")
            continue
        print(f"   {label:14s} {drafted:8d} {ms:7.1f} {max_diff:8.0f} {np.mean(mean_diffs):9.2f} {min(psnrs):9.1f} "
              f"{np.mean(psnrs):10.1f} {moved:12d} {max_bits:9d}")


@usage_said("draft_quality")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.draft_quality")
    parser.add_argument("--images", type=arguments.count(), default=120)
    args = parser.parse_args()
    cfg = ImageConfig()
    compare("benchmark corpus (1024 px wide)", distinct_photos(args.images), cfg)
    demo = [demo_image(name) for _, name, *_ in DEMO_PHOTOS]
    for max_side in (512, 256, 128):
        compare("demo photographs", demo, replace(cfg, max_side=max_side, min_side=32))


if __name__ == "__main__":
    main()
