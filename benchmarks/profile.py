"""Where the job's time and shuffle bytes go, per image, on N distinct real photos served on 127.0.0.1.

    .venv/bin/python -m benchmarks.profile [--images 200] [--top 25]

Three parts, all in this process:
  1. micro-profile: `stages/image.normalise` cut into its building blocks (and the fetcher),
     timed one image at a time: ms per image for fetch, decode, blank check, resize, encode, hashing;
  2. cProfile of the whole job (detectors off, WebDataset only) on the FnApiRunner in one process,
     top functions by cumulative time (download threads are not profiled: cProfile sees one thread);
  3. bytes crossing each shuffle that carries photos: records entering the GroupByKey (from the
     job's stats) times the encoded size of a sample record, with the coder the shuffle uses today
     (the PCollections are untyped, so Beam's FastPrimitivesCoder, which pickles a Photo) and with
     the registered PhotoCoder; per image, as the record was before the images were staged (the
     stored JPEG inside) and as it is now (io/staged_images.py: hashes only, the JPEG written once
     to the staging folder and read back by the writers).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import imagehash
import numpy as np
from apache_beam import coders
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from benchmarks.corpus import Served, distinct_photos, job_args, served
from pipeline.build import build, fetch_settings
from pipeline.cli import run
from pipeline.io.http_client import Fetcher
from pipeline.options import PassOptions
from pipeline.records import Photo, PhotoCoder
from pipeline.sources.yfcc import parse_line
from pipeline.stages import image as image_stage
from pipeline.stages.image import ImageConfig

# The GroupByKeys that carry Photo records, by step label prefix (build.py's stage names), with the
# funnel stage whose input count is the number of records entering it and what each record holds.
# Any other GroupByKey carries ids, hashes or counts (a few dozen bytes a record).
PHOTO_SHUFFLES = (
    ("UniqueIds/", "unique_id", "metadata"),
    ("ExactDuplicates/", "exact_dedup", "staged"),
    ("NearDuplicates/JoinPhotos/", "near_dedup", "staged"),
    ("CapPerOwner/", "owner_cap", "staged"),
    ("WriteDataset/WriteSharded/GroupShards", "kept", "staged"),
)


def _timed(totals: dict[str, float], step: str, call: Callable, *args: object) -> object:
    start = time.perf_counter()
    result = call(*args)
    totals[step] += time.perf_counter() - start
    return result


def _normalise_in_steps(raw: bytes, cfg: ImageConfig, totals: dict[str, float]) -> bytes:
    """`image.normalise` for an upright sRGB JPEG, one building block at a time (same calls, same order)."""
    def decode() -> Image.Image:
        img = image_stage._open(raw)
        scale = image_stage._draft_scale(*img.size, cfg)
        if scale > 1:
            img.draft("RGB", (img.width // scale, img.height // scale))
        img.getexif()
        img.load()
        return image_stage._to_srgb(img)

    rgb = _timed(totals, "decode (checks, draft, load, sRGB)", decode)
    _timed(totals, "blank check (64x64 stddev)", lambda: float(np.asarray(
        rgb.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32).std(axis=(0, 1)).max()))
    size = image_stage._target_size(rgb.width, rgb.height, cfg.max_side)
    small = _timed(totals, "resize (Lanczos)", lambda: rgb.resize(size, Image.Resampling.LANCZOS))

    def encode() -> tuple[Image.Image, bytes]:
        bare = Image.frombytes("RGB", small.size, small.tobytes())
        out = io.BytesIO()
        bare.save(out, "JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling="4:2:0")
        return bare, out.getvalue()

    bare, jpeg = _timed(totals, "encode (JPEG)", encode)
    _timed(totals, "sha256 (download + stored)", lambda: (hashlib.sha256(raw).hexdigest(),
                                                          hashlib.sha256(jpeg).hexdigest()))
    _timed(totals, "pHash + dHash", lambda: (str(imagehash.phash(bare)), str(imagehash.dhash(bare))))
    return jpeg


def micro_profile(corpus: Served, cfg: ImageConfig) -> tuple[dict[str, float], Photo]:
    """ms per image for each step, and a sample Photo as the shuffles after normalise see it."""
    opts = PipelineOptions(job_args(corpus, "unused")).view_as(PassOptions)
    fetcher = Fetcher(fetch_settings(opts).http)
    totals: dict[str, float] = defaultdict(float)
    jpeg, raws = b"", []
    for url in corpus.urls:
        result = _timed(totals, "fetch (1 thread, local server)", fetcher.fetch, url)
        raws.append(result.body)
        jpeg = _normalise_in_steps(result.body, cfg, totals)
    fetcher.close()
    start = time.perf_counter()
    for raw in raws:
        image_stage.normalise(raw, cfg)
    totals["normalise() as one call (check)"] = time.perf_counter() - start
    per_image = {step: 1000 * seconds / len(corpus.urls) for step, seconds in totals.items()}
    line = corpus.metadata.read_bytes().split(b"\n")[-2]  # the last photo's row
    described = parse_line(line, f"{corpus.metadata.name}:{len(corpus.urls)}")
    assert isinstance(described, Photo), described
    sample = described.replace(fetched_url=corpus.urls[-1], image=jpeg, width=512, height=384,
                               original_format="JPEG", original_width=1024, original_height=768,
                               download_sha256="0" * 64, sha256="0" * 64, phash="0" * 16, dhash="0" * 16)
    return per_image, sample


def profile_job(corpus: Served, output: Path, top: int) -> tuple[dict, float, str]:
    """(stats.json, seconds, pstats text) of one in-process run of the whole job."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    stats = run([*job_args(corpus, output), "--detectors=none", "--formats=webdataset"])
    profiler.disable()
    elapsed = time.perf_counter() - start
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative").print_stats(top)
    return stats, elapsed, text.getvalue()


def photo_shuffles(corpus: Served) -> list[str]:
    """Labels of the job's GroupByKeys whose records are Photos (checked against PHOTO_SHUFFLES)."""
    options = PipelineOptions([*job_args(corpus, "unused"), "--detectors=none"])
    pipeline = beam.Pipeline(options=options)
    build(pipeline, options.view_as(PassOptions))
    labels: list[str] = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            if isinstance(node.transform, beam.GroupByKey):
                labels.append(node.full_label)

    pipeline.visit(Visitor())
    return [label for label in labels if any(label.startswith(prefix) for prefix, *_ in PHOTO_SHUFFLES)]


def shuffle_bytes(stats: dict, sample: Photo, labels: list[str]) -> list[tuple[str, int, str, int, int, int, int]]:
    """(step, records, content, bytes per record before staging / now, pickled, then with PhotoCoder)
    per shuffle that carries Photos."""
    entering = {step["stage"]: step["in"] for step in stats["funnel"]} | {"kept": stats["kept"]}
    metadata = sample.replace(image=b"", fetched_url="", width=0, height=0, original_format="", original_width=0,
                              original_height=0, download_sha256="", sha256="", phash="", dhash="")
    before = {"metadata": metadata, "staged": sample}  # up to 2026-11-30 the stored JPEG rode along
    now = {"metadata": metadata, "staged": sample.replace(image=b"")}
    today, registered = coders.FastPrimitivesCoder(), PhotoCoder()
    rows = []
    for label in labels:
        _, stage, content = next(entry for entry in PHOTO_SHUFFLES if label.startswith(entry[0]))
        rows.append((label, entering[stage], content, len(today.encode(before[content])),
                     len(today.encode(now[content])), len(registered.encode(before[content])),
                     len(registered.encode(now[content]))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--top", type=int, default=25, help="functions to list from the job's profile")
    args = parser.parse_args()
    photos = distinct_photos(args.images)
    with tempfile.TemporaryDirectory() as scratch, served(photos, scratch) as corpus:
        per_image, sample = micro_profile(corpus, ImageConfig())
        stats, elapsed, profile_text = profile_job(corpus, Path(scratch) / "out", args.top)
        rows = shuffle_bytes(stats, sample, photo_shuffles(corpus))
    count = len(photos)
    print(f"images: {count}, mean size {sum(map(len, photos)) // count // 1024} KiB, "
          f"stored JPEG sample {len(sample.image) // 1024} KiB")
    print("\n1. micro-profile, one image at a time in this process (ms per image)")
    for step, ms in per_image.items():
        print(f"   {step:40s} {ms:7.2f}")
    work = sum(ms for step, ms in per_image.items() if not step.startswith(("fetch", "normalise")))
    print(f"   {'sum of normalise steps':40s} {work:7.2f}   -> {1000 / work:.0f} images/s per core")
    print(f"\n2. whole job in one process (FnApiRunner, detectors off, WebDataset): {elapsed:.1f} s, "
          f"{count / elapsed:.1f} images/s, {1000 * elapsed / count:.1f} ms per image, kept {stats['kept']}")
    print(profile_text.split("\n   ncalls", 1)[-1].join(["   ncalls", ""]) if "ncalls" in profile_text
          else profile_text)
    print("3. shuffles that carry photos: bytes per record (pickled, as today / with PhotoCoder), before the")
    print("   images were staged (stored JPEG inside) and now (hashes only); total = records x bytes now")
    print(f"   {'GroupByKey':52s} {'records':>7s} {'before':>15s} {'now':>11s} {'total now':>11s}")
    before_total = now_total = 0
    staged = next(step["in"] for step in stats["funnel"] if step["stage"] == "blocklist_content")  # image's out
    for label, records, _, before, now, before_coder, now_coder in rows:
        before_total, now_total = before_total + records * before, now_total + records * now
        print(f"   {label:52s} {records:7d} {before:7d}/{before_coder:<7d} {now:5d}/{now_coder:<5d} "
              f"{records * now / 2**20:7.2f} MiB")
    print(f"   all these shuffles: {before_total / 2**20:.2f} MiB before, {now_total / 2**20:.2f} MiB now "
          f"({before_total / max(count, 1) / 1024:.1f} -> {now_total / max(count, 1) / 1024:.1f} KiB per input "
          f"image); instead each stored JPEG is written once to the staging folder "
          f"(~{staged * len(sample.image) / 2**20:.2f} MiB) and read back by the shard writer")
    print(json.dumps({"per_image_ms": per_image, "job_seconds": elapsed}, indent=None))


if __name__ == "__main__":
    main()
