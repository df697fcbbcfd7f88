"""Does the job scale linearly? Wall time, peak memory and each step's time per image at several sizes.

    .venv/bin/python -m benchmarks.scaling [--sizes 500,2000,10000] [-- extra job flags]

Serves N distinct real-photo JPEGs (benchmarks/corpus.py: 1024 px crops of the demo photographs)
on 127.0.0.1 and runs the job once per size, each in a fresh process (`python -m pipeline run`,
detectors off, WebDataset only, one in-process worker: the setting README recommends locally), the
smaller sizes reading a prefix of the same corpus. For each size it prints the wall time and the
peak proportional set size of the whole process tree (both also per image), and the seconds per
image of each step the job records in stats.json (`steps`: read, fetched, deduplicated, detected
when detectors run, kept, rejected; the time from a step's first record to its last).

Linear scaling means the time per image does not rise with the size. The smallest run carries the
fixed start-up (imports, building the graph) over fewer images, so the check compares each size with
the one before it: a rise of more than 25% per image (and of more than 2 ms) in the wall time or in a
step, or peak memory that grows more than linearly, is printed as GROWS and the exit code is 1.
Ratios, not absolute figures, are what compare across these shared, noisy machines.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import arguments
from benchmarks.corpus import distinct_photos
from benchmarks.memory import MIB, job, measure, write_metadata
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.usage import OneLineParser, usage_said

RISE = (1.25, 2.0)  # per-image time grows if it rises over 1.25x the previous size's and by more than 2 ms


def _grows(before: float, after: float) -> bool:
    return after > before * RISE[0] and (after - before) > RISE[1]


def compare(results: list[dict]) -> tuple[list[str], bool]:
    """One line per pair of consecutive sizes (wall, each step and peak memory, per image, as the
    ratio of the larger size's to the smaller's), and whether everything scaled linearly: no time
    per image rising by more than RISE, no peak memory rising faster than the rows."""
    lines, linear = [], True
    for before, after in itertools.pairwise(results):
        wall = (before["seconds"] / before["rows"] * 1000, after["seconds"] / after["rows"] * 1000)
        line = f"{before['rows']:,} -> {after['rows']:,}: wall per image x{wall[1] / wall[0]:.2f}"
        line += " (GROWS)" if _grows(*wall) else ""
        linear &= not _grows(*wall)
        for name in sorted(set(before["steps"]) & set(after["steps"])):
            step = (before["steps"][name] / before["rows"] * 1000, after["steps"][name] / after["rows"] * 1000)
            if step[0] > 0:
                line += f", {name} x{step[1] / step[0]:.2f}"
            if _grows(*step):
                line += " (GROWS)"
                linear = False
        # Memory: the peak may rise with the work, but not faster than the rows do. (No peak where
        # /proc is missing: nothing to compare.)
        rows = after["rows"] / before["rows"]
        if before["tree_mib"] > 0:
            memory = after["tree_mib"] / before["tree_mib"]
            lines.append(f"{line}; peak memory x{memory:.2f} for x{rows:.1f} rows")
            linear &= memory <= rows
        else:
            lines.append(f"{line}; peak memory not measured")
    return lines, linear


def run_size(urls: list[str], host: str, rows: int, scratch: Path, extra: list[str]) -> dict:
    output = scratch / f"out-{rows}"
    argv = ["run", f"--input={write_metadata(urls, rows, scratch)}", f"--output={output}",
            f"--allowed_hosts={host}", "--per_host_rps=0", "--per_owner_cap=0", "--detectors=none",
            "--formats=webdataset", "--runner=FnApiRunner", *extra]
    result = measure(job(argv))
    stats = json.loads((output / "stats.json").read_text())
    if not stats.get("accounted"):
        raise SystemExit(f"the {rows}-row run did not account for every row: {stats}")
    steps = {name: step["seconds"] for name, step in stats.get("steps", {}).items()}
    return {"rows": rows, "kept": stats["kept"], "seconds": result["seconds"], "tree_mib": result["tree_mib"],
            "steps": steps}


@usage_said("scaling")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=arguments.counts(), default=[500, 2000, 10000],
                        help="comma-separated run sizes")
    parser.add_argument("extra", nargs="*", help="more job flags (after --)")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    flags = " ".join(args.extra) or "none"
    print(f"{os.cpu_count()} CPUs; detectors off, WebDataset, one worker; extra flags: {flags}", flush=True)
    start = time.perf_counter()
    photos = distinct_photos(max(sizes))
    print(f"corpus: {len(photos):,} distinct JPEGs, mean {sum(map(len, photos)) // len(photos) // 1024} KiB "
          f"(made in {time.perf_counter() - start:.0f} s)", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="pass-scaling-") as temporary, StaticServer() as server:
        urls = [server.add(f"/1/{100000 + i}_abcdef0123.jpg", image(data)) for i, data in enumerate(photos)]
        del photos
        for rows in sizes:
            result = run_size(urls, server.host, rows, Path(temporary), args.extra)
            results.append(result)
            per_image = {name: seconds / rows * 1000 for name, seconds in result["steps"].items()}
            wall = result["seconds"]
            print(f"{rows:>7,} images: wall {wall:7.1f} s = {wall / rows * 1000:6.1f} ms/image"
                  f"  peak {result['tree_mib']:6,.0f} MiB = {result['tree_mib'] * MIB / rows / 1024:7.1f} KiB/image"
                  f"  kept {result['kept']:,}  steps ms/image: "
                  + ", ".join(f"{name} {value:.1f}" for name, value in sorted(per_image.items())), flush=True)
    lines, linear = compare(results)
    print("\n".join(lines))
    verdict = "linear (no step's time per image grows with the size)" if linear else "GROWS faster than linearly"
    print(f"scaling: {verdict}")
    sys.exit(0 if linear else 1)


if __name__ == "__main__":
    main()
