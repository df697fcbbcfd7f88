"""Where the job's time and shuffle bytes go, per image, on N distinct real photos served on 127.0.0.1.

    .venv/bin/python -m benchmarks.profile [--images 200] [--top 25]

Three parts, all in this process:
  1. micro-profile: `stages/image.normalise` cut into its building blocks (and the fetcher),
     timed one image at a time: ms per image for fetch, decode, resize, blank check, encode, hashing,
     and the images per second a core manages (by CPU time: the bar is `normalise` itself, called once per
     image, best of ONE_CALL_PASSES passes; the steps' sum is one cold pass): for the defaults and, on the same
     downloads, for two other settings of the resize rule (RULES); and for the defaults on 640 px
     copies of the same photos, the size a run fetches from Flickr for --max_side 512, and on the same
     photos carrying an ICC profile (converted to sRGB at full size);
  2. cProfile of the whole job (detectors off, WebDataset only) on the FnApiRunner in one process,
     top functions by cumulative time (download threads are not profiled: cProfile sees one thread);
  3. bytes crossing each shuffle that carries photos: records entering the GroupByKey (from the
     job's stats) times the encoded size of a sample record, as it was up to 2026-11-30 (the stored
     JPEG inside, pickled by Beam's FastPrimitivesCoder as the PCollections were untyped) and as it
     is now (io/staged_images.py: hashes only, the JPEG written once to the staging folder and read
     back by the writers; encoded with the coder Beam picks from the shuffle's input type);
  4. the job's fused stages in the order the local runner runs them, with 2 worker processes
     (`--direct_running_mode=multi_processing`): the seconds from the start of `run` to the first
     bundle of the download-and-normalise stage (building the job, starting the workers, reading),
     that stage, the stages after it (duplicates, writers) and the end (workers stopped, stats,
     publish), from the start times of Beam's bundles (its `run_bundle` debug log).
"""

from __future__ import annotations

import cProfile
import dataclasses
import hashlib
import io
import json
import logging
import pstats
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import apache_beam as beam
import imagehash
from apache_beam import coders
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner
from PIL import Image, ImageCms

from benchmarks import arguments
from benchmarks.corpus import Served, distinct_photos, job_args, served
from pipeline.build import build, fetch_settings
from pipeline.cli import run
from pipeline.io.http_client import Fetcher
from pipeline.near_dup.perceptual_hashes import phash_dhash, single_threaded_blas
from pipeline.options import PassOptions
from pipeline.records import Photo
from pipeline.sources.yfcc import parse_line
from pipeline.stages import image as image_stage
from pipeline.stages import unique_id
from pipeline.stages.image import ImageConfig
from pipeline.usage import OneLineParser, usage_said

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


COMPARISON = "(imagehash's own pHash + dHash: not summed)"
# The per-image work as the image stage runs it: `normalise` called once per image, over all the images, in
# passes; the least CPU of the passes is the figure (the usual way to read a benchmark on a shared machine,
# whose neighbours only ever add time; and what a worker does past its first images, with Pillow's and the
# hashes' per-size caches warm). `_normalise_in_steps` is one cold pass, for where the time goes.
ONE_CALL = "normalise() as one call, best of 3 passes"
ONE_CALL_PASSES = 3


_Result = TypeVar("_Result")


def _timed(totals: dict[str, float], step: str, call: Callable[..., _Result], *args: object) -> _Result:
    """Adds the call's wall time to totals[step] and its CPU time (this thread's) to totals["cpu " + step]:
    on a shared machine only the CPU time says what a step costs a core."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    result = call(*args)
    totals[step] += time.perf_counter() - start
    totals[f"cpu {step}"] += time.thread_time() - start_cpu
    return result


def _normalise_in_steps(raw: bytes, cfg: ImageConfig, totals: dict[str, float]) -> bytes:
    """`image.normalise` for an upright sRGB JPEG, one building block at a time (same calls, same order)."""
    def decode() -> tuple[Image.Image, Image.Image]:
        img = image_stage._open(raw)
        scale = image_stage._draft_scale(*img.size, cfg)
        if scale > 1:
            img.draft("RGB", (img.width // scale, img.height // scale))
        img.getexif()
        pixels = image_stage.decoded(img, raw, scale)
        return img, image_stage._to_srgb(pixels)

    opened, rgb = _timed(totals, "decode (checks, draft, load, sRGB)", decode)
    size = image_stage._target_size(rgb.width, rgb.height, cfg.max_side)
    small = _timed(totals, "resize (box reduce, then Lanczos)", image_stage._resize, rgb, size,
                   cfg.resize_reducing_gap)
    _timed(totals, "blank check (64x64 stddev)", lambda: image_stage.channel_stddev(
        small.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0)))

    def encode() -> tuple[Image.Image, bytes]:
        bare = small.copy() if small is opened else small  # as normalise: only the opened file itself is copied
        bare.info = {}
        out = io.BytesIO()
        bare.save(out, "JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling="4:2:0")
        return bare, out.getvalue()

    bare, jpeg = _timed(totals, "encode (JPEG)", encode)
    _timed(totals, "sha256 (download + stored)", lambda: (hashlib.sha256(raw).hexdigest(),
                                                          hashlib.sha256(jpeg).hexdigest()))

    hashes = _timed(totals, "pHash + dHash (one greyscale conversion)", lambda: phash_dhash(bare.convert("L")))

    def imagehashs() -> tuple[str, str]:  # what normalise did until 2026-12-01: same conversion, same run
        grey = bare.convert("L")
        return str(imagehash.phash(grey)), str(imagehash.dhash(grey))

    if hashes != _timed(totals, COMPARISON, imagehashs):
        raise AssertionError(f"perceptual_hashes differs from imagehash: {hashes} != {imagehashs()}")
    return jpeg


# The image stage's rule (the defaults) and, measured on the same downloads in the same run, the two
# settings a team might weigh against it (README, Normalisation): the plain Lanczos of all decoded pixels
# (the rule until 2026-12-01) and decoding at the stored size (faster, at a loss of quality). Last, the
# defaults on what a run fetches from Flickr for --max_side 512: the same photos as 640 px copies (the
# smallest size covering 512), which no rule reduces by an integer factor: a Lanczos resize of every pixel.
# And the defaults on the same 1024 px photos carrying an ICC profile (the same pixels, a profile segment added),
# as a quarter of real JPEGs do: normalise converts them to sRGB at full size (LittleCMS, ~25-30 ms per photo).
FLICKR_COPY_SIDE = 640
FLICKR_COPIES = f"defaults, {FLICKR_COPY_SIDE} px copies of the same photos (Flickr's size for 512)"
WITH_PROFILE = "defaults, the same photos with an sRGB ICC profile embedded"
# Each rule: its label and the ImageConfig fields it changes (by name, each a value of its field's own type).
RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("defaults", {}), ("--resize_reducing_gap=0", {"resize_reducing_gap": 0.0}),
    ("--draft_supersample=1", {"draft_supersample": 1}), (FLICKR_COPIES, {}), (WITH_PROFILE, {}))


def with_icc_profile(raw: bytes, profile: bytes | None = None) -> bytes:
    """The JPEG `raw` with an ICC profile (LittleCMS's own sRGB unless given) in an APP2 segment right after
    its SOI, as cameras and editors write it; not re-encoded, so the same pixels."""
    if profile is None:
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    payload = b"ICC_PROFILE\x00\x01\x01" + profile  # chunk 1 of 1
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("a profile this large needs several APP2 chunks")
    return raw[:2] + b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload + raw[2:]


def flickr_copy(raw: bytes, side: int = FLICKR_COPY_SIDE) -> bytes:
    """The photo at `side` px on its longer side, encoded as the corpus is (JPEG q88): what a Flickr
    size such as `url_z` serves, made from the corpus's own 1024 px photo."""
    img = Image.open(io.BytesIO(raw))
    scale = side / max(img.size)
    copy = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=88)
    return out.getvalue()


def micro_profile(corpus: Served, cfg: ImageConfig) -> tuple[dict[str, dict[str, float]], Photo]:
    """Per rule of RULES, ms per image for each step; and a sample Photo as the shuffles after normalise
    see it (from the defaults)."""
    opts = PipelineOptions(job_args(corpus, "unused")).view_as(PassOptions)
    fetcher = Fetcher(fetch_settings(opts).http)
    fetched: dict[str, float] = defaultdict(float)
    raws = [_timed(fetched, "fetch (1 thread, local server)", fetcher.fetch, url).body for url in corpus.urls]
    fetcher.close()
    single_threaded_blas()  # as the image stage's setup() does in every worker
    phash_dhash(Image.new("L", (32, 32)))  # imports scipy once, outside every rule's figures
    per_rule: dict[str, dict[str, float]] = {}
    jpeg = b""  # the last stored JPEG of the defaults: the sample record's image
    sources_of = {FLICKR_COPIES: [flickr_copy(raw) for raw in raws],
                  WITH_PROFILE: [with_icc_profile(raw) for raw in raws]}
    for label, changes in RULES:
        rule = dataclasses.replace(cfg, **changes)
        sources = sources_of.get(label, raws)
        totals: dict[str, float] = defaultdict(float, fetched if label == "defaults" else {})
        stored = [_normalise_in_steps(raw, rule, totals) for raw in sources]
        if label == "defaults":
            jpeg = stored[-1]
        passes = []
        for _ in range(ONE_CALL_PASSES):
            one_call: dict[str, float] = defaultdict(float)
            for raw in sources:
                _timed(one_call, ONE_CALL, image_stage.normalise, raw, rule)
            passes.append(one_call)
        totals |= min(passes, key=lambda one_call: one_call["cpu " + ONE_CALL])
        per_rule[label] = {step: 1000 * seconds / len(corpus.urls) for step, seconds in totals.items()}
    line = corpus.metadata.read_bytes().split(b"\n")[-2]  # the last photo's row
    described = parse_line(line, f"{corpus.metadata.name}:{len(corpus.urls)}")
    assert isinstance(described, Photo), described
    sample = described.replace(fetched_url=corpus.urls[-1], image=jpeg, width=512, height=384,
                               original_format="JPEG", original_width=1024, original_height=768,
                               download_sha256="0" * 64, sha256="0" * 64, phash="0" * 16, dhash="0" * 16)
    return per_rule, sample


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


_BUNDLE_START = "Running bundle for stage "  # FnApiRunner's run_bundle debug message, up to the stage name


class _BundleStarts(logging.Handler):
    """(seconds since `origin`, stage name) of every bundle the local runner starts."""

    def __init__(self, origin: float) -> None:
        super().__init__(logging.DEBUG)
        self.origin = origin
        self.starts: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_BUNDLE_START):
            self.starts.append((time.perf_counter() - self.origin, message.split("\n")[0][len(_BUNDLE_START):]))


def short_stage(name: str) -> str:
    """A fused stage's first step, readably: 'NearDuplicates/Partitions/Read' and the like."""
    step = re.search(r"ref_AppliedPTransform_([^)]+?)_\d+\)|([A-Za-z][\w-]*(?:/[\w-]+)+)", name)
    return (step.group(1) or step.group(2)) if step else name[:60]


def stage_timeline(corpus: Served, output: Path) -> tuple[list[tuple[float, str]], float]:
    """(bundle start times and stage names, seconds in all) of one run with 2 worker processes."""
    logger = logging.getLogger(fn_runner._BUNDLE_LOGGER.name)
    start = time.perf_counter()
    handler, level, propagate = _BundleStarts(start), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # on this logger only: pipeline/cli.py quietens its parents
    logger.propagate = False
    try:
        run([*job_args(corpus, output), "--detectors=none", "--formats=webdataset", "--direct_num_workers=2",
             "--direct_running_mode=multi_processing"])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return handler.starts, time.perf_counter() - start


def stage_seconds(starts: list[tuple[float, str]], total: float) -> list[float]:
    """Each stage's seconds: to the next bundle's start, the last one's to the end of `run`."""
    ends = [t for t, _ in starts[1:]] + [total]
    return [end - start for (start, _), end in zip(starts, ends, strict=True)]


def timeline_phases(starts: list[tuple[float, str]], total: float) -> list[tuple[str, float]]:
    """Start (to the longest stage), the longest stage, the stages after it, the end (the last
    bundle's start to the end of `run`)."""
    if not starts:
        return [("no bundle start was logged (not Beam's FnApiRunner?)", total)]
    seconds = stage_seconds(starts, total)
    longest = max(range(len(starts)), key=seconds.__getitem__)
    phases = [("start: build, workers, read (to the longest stage)", starts[longest][0]),
              (f"longest stage: {short_stage(starts[longest][1])}", seconds[longest])]
    if longest == len(starts) - 1:  # the last stage: it runs to the end
        return phases
    return [*phases, (f"the {len(starts) - longest - 2} stages after it",
                      starts[-1][0] - starts[longest][0] - seconds[longest]),
            ("last stage and the end: workers stopped, stats, publish", seconds[-1])]


def photo_shuffles(corpus: Served) -> dict[str, coders.Coder]:
    """The job's GroupByKeys whose records are Photos (checked against PHOTO_SHUFFLES), each with the
    coder Beam gives its input (from the PCollection's type: PhotoCoder where the keyed step is typed,
    else FastPrimitivesCoder, which pickles a Photo)."""
    options = PipelineOptions([*job_args(corpus, "unused"), "--detectors=none"])
    pipeline = beam.Pipeline(options=options)
    build(pipeline, options.view_as(PassOptions))
    found: dict[str, coders.Coder] = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            if isinstance(node.transform, beam.GroupByKey):
                found[node.full_label] = coders.registry.get_coder(next(iter(node.inputs)).element_type)

    pipeline.visit(Visitor())
    return {label: coder for label, coder in found.items()
            if any(label.startswith(prefix) for prefix, *_ in PHOTO_SHUFFLES)}


def _encoded_size(coder: coders.Coder, photo: Photo) -> int:
    """Bytes of one shuffled element holding `photo`: a (key, photo) pair where the coder is typed, (key, (tag,
    photo)) where its value is a tagged pair (UniqueIds' grouping beside the license stage's refused rows)."""
    if isinstance(coder, coders.TupleCoder):
        key_coder, value_coder = coder.coders()
        key = 3 if isinstance(key_coder, coders.VarIntCoder) else "0" * 16
        return len(coder.encode((key, (unique_id.NEW, photo) if isinstance(value_coder, coders.TupleCoder) else photo)))
    return len(coder.encode(("0" * 16, ("photos", photo))))  # a CoGroupByKey's tagged union, pickled


def shuffle_bytes(stats: dict, sample: Photo, shuffles: dict[str, coders.Coder]
                  ) -> list[tuple[str, int, int, int, str]]:
    """(step, records, bytes per record before the images were staged and typed (pickled, stored
    JPEG inside), bytes now, coder now) per shuffle that carries Photos."""
    entering = {step["stage"]: step["in"] for step in stats["funnel"]} | {"kept": stats["kept"]}
    metadata = sample.replace(image=b"", fetched_url="", width=0, height=0, original_format="", original_width=0,
                              original_height=0, download_sha256="", sha256="", phash="", dhash="")
    before = {"metadata": metadata, "staged": sample}  # up to 2026-11-30 the stored JPEG rode along
    now = {"metadata": metadata, "staged": sample.replace(image=b"")}
    pickled = coders.FastPrimitivesCoder()
    rows = []
    for label, coder in shuffles.items():
        _, stage, content = next(entry for entry in PHOTO_SHUFFLES if label.startswith(entry[0]))
        rows.append((label, entering[stage], _encoded_size(pickled, before[content]),
                     _encoded_size(coder, now[content]), type(coder).__name__))
    return rows


@usage_said("profile")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.profile")
    parser.add_argument("--images", type=arguments.count(), default=200)
    parser.add_argument("--top", type=arguments.count(), default=25, help="functions to list from the job's profile")
    args = parser.parse_args()
    photos = distinct_photos(args.images)
    with tempfile.TemporaryDirectory() as scratch, served(photos, scratch) as corpus:
        per_rule, sample = micro_profile(corpus, ImageConfig())
        stats, elapsed, profile_text = profile_job(corpus, Path(scratch) / "out", args.top)
        rows = shuffle_bytes(stats, sample, photo_shuffles(corpus))
        starts, timeline_seconds = stage_timeline(corpus, Path(scratch) / "two-workers")
    count = len(photos)
    print(f"images: {count}, mean size {sum(map(len, photos)) // count // 1024} KiB, "
          f"stored JPEG sample {len(sample.image) // 1024} KiB")
    print("\n1. micro-profile, one image at a time in this process (ms per image: wall, CPU of this thread)")
    for label, per_image in per_rule.items():
        print(f"   {label}")
        steps = [step for step in per_image if not step.startswith("cpu ")]
        for step in steps:
            print(f"     {step:44s} {per_image[step]:7.2f} {per_image['cpu ' + step]:7.2f}")
        work = [step for step in steps if not step.startswith(("fetch", "normalise")) and step != COMPARISON]
        wall, cpu = sum(per_image[step] for step in work), sum(per_image["cpu " + step] for step in work)
        print(f"     {'sum of normalise steps (one pass)':44s} {wall:7.2f} {cpu:7.2f}   -> {1000 / cpu:.0f} images/s "
              f"per core (CPU; {1000 / wall:.0f} by the wall clock, which other jobs on the machine stretch)")
        one_call = per_image["cpu " + ONE_CALL]
        print(f"     {'per-image work (the bar: >= 120 per core)':44s} {'':7s} {one_call:7.2f}   -> "
              f"{1000 / one_call:.0f} images/s per core (CPU of normalise() as one call, best of "
              f"{ONE_CALL_PASSES} passes)")
    print(f"\n2. whole job in one process (FnApiRunner, detectors off, WebDataset): {elapsed:.1f} s, "
          f"{count / elapsed:.1f} images/s, {1000 * elapsed / count:.1f} ms per image, kept {stats['kept']}")
    print(profile_text.split("\n   ncalls", 1)[-1].join(["   ncalls", ""]) if "ncalls" in profile_text
          else profile_text)
    print("3. shuffles that carry photos: bytes per record before (pickled, stored JPEG inside) and now")
    print("   (hashes only, with the coder Beam picks for the shuffle); total = records x bytes now")
    print(f"   {'GroupByKey':52s} {'records':>7s} {'before':>7s} {'now':>5s} {'coder now':>20s} {'total now':>11s}")
    before_total = now_total = 0
    staged = next(step["in"] for step in stats["funnel"] if step["stage"] == "blocklist_content")  # image's out
    for label, records, before, now, coder in rows:
        before_total, now_total = before_total + records * before, now_total + records * now
        print(f"   {label:52s} {records:7d} {before:7d} {now:5d} {coder:>20s} {records * now / 2**20:7.2f} MiB")
    print(f"   all these shuffles: {before_total / 2**20:.2f} MiB before, {now_total / 2**20:.2f} MiB now "
          f"({before_total / max(count, 1) / 1024:.1f} -> {now_total / max(count, 1) / 1024:.1f} KiB per input "
          f"image); instead each stored JPEG is written once to the staging folder "
          f"(~{staged * len(sample.image) / 2**20:.2f} MiB) and read back by the shard writer")
    print(f"\n4. the job with 2 worker processes (WebDataset): {timeline_seconds:.2f} s, {len(starts)} fused stages")
    phases = timeline_phases(starts, timeline_seconds)
    for label, seconds in phases:
        print(f"   {label:64s} {seconds:6.2f} s")
    per_stage = stage_seconds(starts, timeline_seconds)
    slowest = sorted(range(len(starts)), key=lambda i: -per_stage[i])[1:args.top // 3 + 1]
    print("   slowest of the other stages: " + ", ".join(
        f"{short_stage(starts[i][1])} {per_stage[i]:.2f} s" for i in sorted(slowest)))
    print(json.dumps({"per_image_ms": per_rule, "job_seconds": elapsed,
                      "two_workers": dict(phases, seconds=timeline_seconds)}, indent=None))


if __name__ == "__main__":
    main()
