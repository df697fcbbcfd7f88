"""Near-duplicate search at scale on synthetic 64-bit hashes: wall time, peak memory and hash
comparisons per image for the Beam transform on the local runner, against numpy brute force on a
50k subset (`--subset`) measured in the same run and extrapolated (brute force is quadratic).

    .venv/bin/python -m benchmarks.near_dup_scale --sizes 100000 1000000

The hashes: uniform random, 1% planted near duplicates (1-3 flipped bits), and a skewed 2% that
share their top 40 bits (the dark / blank / low-detail images that collide in real data).
`--dense 500 2000 8000` also runs clusters of that many hashes, each 1 to r bits from one centre
(a burst of near-identical frames, a webcam's uploads): a large share of the n^2 / 2 pairs are
within r, and the stage must not list them; the time per image is printed against the smallest
cluster's, measured in the same run.

imagededup: its package imports torch, but its search structures (BKTree and the Cython brute
force) import without it, so `pip install --no-deps imagededup==0.3.3.post2` into the venv is
enough for this comparison; it is skipped when the package is absent. Its searches answer one
query at a time, so they are timed on 2,000 queries against the 50k subset and scaled to 50k queries.
"""

from __future__ import annotations

import random
import resource
import time

import apache_beam as beam
import numpy as np
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks import arguments
from pipeline.records import Photo
from pipeline.stages.near_dedup import NearDuplicates
from pipeline.usage import OneLineParser, usage_said

SKEW_PREFIX = random.Random(12345).getrandbits(24) << 40  # shared by every chunk: one skewed region
CHUNK = 50_000
SEARCHED = "photos_searched"


def synthetic_hashes(count: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    prefix = SKEW_PREFIX
    out: list[int] = []
    while len(out) < count:
        roll = rng.random()
        if roll < 0.02:
            out.append(prefix | rng.getrandbits(40))
        elif roll < 0.03 and out:
            value = out[rng.randrange(len(out))]
            for bit in rng.sample(range(64), rng.randint(1, 3)):
                value ^= 1 << bit
            out.append(value)
        else:
            out.append(rng.getrandbits(64))
    return out


def brute_force_seconds(hashes: list[int], distance: int) -> float:
    values = np.array(hashes, dtype=np.uint64)
    start = time.perf_counter()
    for begin in range(0, len(values), 2048):
        rows = values[begin:begin + 2048]
        np.count_nonzero(np.bitwise_count(rows[:, None] ^ values[None, :]) <= distance)
    return time.perf_counter() - start


def chunks(size: int) -> list[tuple[int, int]]:
    """(chunk, photos in it) for `size` photos: whole chunks of CHUNK, the last one cut to what is left. (Whole
    chunks only made a size below CHUNK search CHUNK photos, and one between chunks the chunks below it.)"""
    return [(chunk, min(CHUNK, size - chunk * CHUNK)) for chunk in range(-(-size // CHUNK))]


def photos_of_chunk(chunk_and_count: tuple[int, int]) -> list[Photo]:
    """Generated inside the pipeline, so that 10M photos never sit in one Python list. A cut chunk holds the first
    hashes of the whole one (the same seed)."""
    chunk, count = chunk_and_count
    hashes = synthetic_hashes(count, seed=chunk)
    Metrics.counter("benchmark", SEARCHED).inc(len(hashes))
    return [Photo(photo_id=str(chunk * CHUNK + i), phash=f"{h:016x}", original_width=100, original_height=100)
            for i, h in enumerate(hashes)]


def imagededup_seconds(hashes: list[int], distance: int, queries: int = 2000) -> dict[str, float] | None:
    try:
        from imagededup.handlers.search.bktree import BKTree
        from imagededup.handlers.search.brute_force_cython import BruteForceCython
    except ImportError:
        return None
    queries = min(queries, len(hashes))  # a subset smaller than the queries is searched once, not scaled up
    table = {str(i): f"{h:016x}" for i, h in enumerate(hashes)}
    sample = list(table.values())[:queries]

    def hamming(a: str, b: str) -> int:
        return (int(a, 16) ^ int(b, 16)).bit_count()

    timings = {}
    for name, structure in (("BKTree", BKTree), ("BruteForceCython", BruteForceCython)):
        start = time.perf_counter()
        index = structure(table, hamming)
        for query in sample:
            index.search(query, distance)
        timings[name] = (time.perf_counter() - start) * len(hashes) / queries
    return timings


def dense_cluster(size: int, distance: int, seed: int = 0) -> list[Photo]:
    """`size` distinct hashes, each 1 to `distance` bits from one centre (at most C(64, 1..r) of them)."""
    rng = random.Random(seed)
    centre = rng.getrandbits(64)
    values: dict[int, None] = {}
    while len(values) < size:
        value = centre
        for bit in rng.sample(range(64), rng.randint(1, max(1, distance))):
            value ^= 1 << bit
        values[value] = None
    return [Photo(photo_id=str(i), phash=f"{v:016x}", original_width=100, original_height=100)
            for i, v in enumerate(values)]


def beam_run(size: int, distance: int, dense: bool = False) -> tuple[float, int, int]:
    """(wall seconds, hash comparisons, photos searched)."""
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    if dense:
        photos = pipeline | beam.Create(dense_cluster(size, distance), reshuffle=False)
    else:
        photos = pipeline | beam.Create(chunks(size), reshuffle=False) | beam.FlatMap(photos_of_chunk)
    out = photos | NearDuplicates(distance)
    _ = out.rejected | beam.combiners.Count.Globally() | beam.Map(lambda n: None)
    result = pipeline.run()
    result.wait_until_finish()
    elapsed = time.perf_counter() - start

    def counted(name: str) -> int:
        return sum(c.committed or c.attempted or 0 for c in result.metrics().query(
            MetricsFilter().with_name(name))["counters"])

    return elapsed, counted("hash_comparisons"), size if dense else counted(SEARCHED)


@usage_said("near_dup_scale")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.near_dup_scale")
    parser.add_argument("--sizes", type=arguments.count(1), nargs="+", default=[100_000])
    # NearDuplicates' own bound (as --near_dup_distance's): past it, its ValueError came after the brute force.
    parser.add_argument("--distance", type=arguments.count(0, most=16), default=4)
    parser.add_argument("--dense", type=arguments.count(1), nargs="*", default=[],
                        help="cluster sizes, all within the distance")
    parser.add_argument("--subset", type=arguments.count(1), default=50_000,
                        help="hashes brute force (and imagededup) search, extrapolated to each size")
    args = parser.parse_args()
    baseline = None
    for size in args.dense:
        elapsed, comparisons, _ = beam_run(size, args.distance, dense=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per_image = elapsed / size
        baseline = baseline or per_image
        print(f"dense cluster n={size:>7,}  beam {elapsed:6.1f} s   peak RSS {peak:6.0f} MiB   "
              f"comparisons/image {comparisons / size:8.1f}   time/image vs n={args.dense[0]:,}: "
              f"{per_image / baseline:5.2f}x")
    subset = synthetic_hashes(args.subset, seed=1)
    brute = brute_force_seconds(subset, args.distance)
    print(f"brute force (numpy popcount), {args.subset:,} hashes: {brute:.2f} s")
    imagededup = imagededup_seconds(subset, args.distance)
    if imagededup is None:
        print("imagededup not installed: skipped (pip install --no-deps imagededup==0.3.3.post2)")
    else:
        for name, seconds in imagededup.items():
            print(f"imagededup {name}, {args.subset:,} hashes (scaled from {min(2000, args.subset):,} queries): "
                  f"{seconds:.0f} s")
    for size in args.sizes:
        elapsed, comparisons, searched = beam_run(size, args.distance)
        assert searched == size, (searched, size)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        extrapolated = brute * (size / args.subset) ** 2
        print(f"N={size:>9,}  beam {elapsed:7.1f} s   peak RSS {peak:6.0f} MiB   "
              f"comparisons/image {comparisons / size:6.2f}   brute force extrapolated {extrapolated:9.0f} s   "
              f"ratio {extrapolated / elapsed:7.1f}x")


if __name__ == "__main__":
    main()
