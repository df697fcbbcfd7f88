"""Peak memory of the whole job against the number of rows: peak memory must not grow with it.

    .venv/bin/python -m benchmarks.memory [--rows 100,400,1600] [--detectors default] [--no_demo]
                                          [-- extra job flags, e.g. --direct_num_workers=2
                                              --direct_running_mode=multi_processing]

Serves the benchmark corpus (benchmarks/corpus.py: distinct real-photo JPEGs) on 127.0.0.1 and runs
the job once per size, each in a fresh process (`python -m pipeline run`, the local runner,
the default detectors unless told otherwise), and the demo (`pass-pipeline demo`). While a run
lasts, its whole process tree (the job and any SDK worker processes it starts) is sampled every
0.2 s from /proc and the sum of their proportional set sizes (PSS: shared pages counted once over
the processes that share them) kept at its peak; after it, the largest single process (see below)
and the job's own figure, `peak_memory_mb` in stats.json (the job's own sample of its process tree,
every 0.5 s, with the same code: pipeline/io/process_memory.py), are printed beside it. A run is judged by the tree
peak. The largest-process figure is the job's own `peak_rss_mb` from stats.json (its `VmHWM`, which
exec resets, or a waited-for worker's); only where a run wrote none is it wait4's `ru_maxrss`, an
upper bound: Linux carries a process's peak RSS across fork and exec into ru_maxrss, so a job
launched from this process (which holds the whole corpus) would report at least this one's size.
Targets (issue #14): the demo under 2 GiB, 10,000 rows with detectors on under 4 GiB (`--rows
10000`; smaller runs print the 10,000-row figure their trend projects, from runs at least 100 rows
apart). It says whether the peak grows with rows: more than 25% and 150 MiB between the smallest and
the largest run. Exits 1 when a target measured is missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import arguments
from benchmarks.corpus import distinct_photos
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.io.process_memory import TreeMemory
from pipeline.usage import OneLineParser, usage_said

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose `pipeline` the runs import
MIB = 1024 * 1024
DEMO_TARGET_MIB = 2048
ROWS_TARGET = (10_000, 4096)  # (rows, MiB)
SAMPLE_SECONDS = 0.2
GROWTH = (1.25, 150)  # growth if the largest run's peak is over 1.25x the smallest's and 150 MiB more
PROJECTED_SPAN = 100  # rows between the smallest and the largest run below which no trend is projected


def job(argv: list[str]) -> list[str]:
    """The command that runs `pass-pipeline ARGV` with this checkout's code."""
    return [sys.executable, "-m", "pipeline", *argv]


def measure(command: list[str]) -> dict:
    """Runs `command` in a fresh process; the peak PSS of its process tree, its largest process and time."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    # The job's own sampler (pipeline/io/process_memory.py), on the child's tree, every 0.2 s.
    with TreeMemory(child.pid, SAMPLE_SECONDS) as sampler:
        # stderr is read while the run lasts (a full pipe would stall it); wait4 gives this run's own rusage.
        errors = child.stderr.read() if child.stderr else b""
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.stderr.write(errors.decode("utf-8", "replace")[-3000:])
        raise SystemExit(f"the run {command} failed with exit code {child.returncode}")
    return {"tree_mib": sampler.peak_mib, "largest_mib": usage.ru_maxrss / 1024, "processes": sampler.processes,
            "seconds": time.perf_counter() - start}


def write_metadata(urls: list[str], rows: int, scratch: Path) -> Path:
    path = scratch / f"rows-{rows}.tsv"
    lines = [yfcc_line(i + 1, str(100000 + i), urls[i], owner_nsid=f"{i % 50}@N00") for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _report(label: str, result: dict, stats: dict, target: int | None) -> bool:
    met = target is None or result["tree_mib"] < target
    verdict = "" if target is None else f"  target < {target:,} MiB: {'ok' if met else 'MISSED'}"
    tree = f"{stats['peak_memory_mb']:7,.0f}" if stats.get("peak_memory_mb") is not None else "      ?"
    # The job's own figure when it wrote one (VmHWM, not carried over from this process); else wait4's.
    largest = stats.get("peak_rss_mb") or result["largest_mib"]
    print(f"{label:>12s}  tree peak {result['tree_mib']:7,.0f} MiB  largest process {largest:7,.0f} MiB"
          f"  stats.json {tree} MiB  ({result['processes']} processes, {result['seconds']:5.0f} s){verdict}",
          flush=True)
    return met


def _stats(output: Path) -> dict:
    stats = output / "stats.json"
    return json.loads(stats.read_text()) if stats.exists() else {}


@usage_said("memory")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=arguments.counts(), default=[100, 400, 1600],
                        help="comma-separated run sizes, ascending")
    parser.add_argument("--detectors", default="default")
    parser.add_argument("--no_demo", action="store_true", help="skip the demo run")
    parser.add_argument("extra", nargs="*", help="more job flags (after --)")
    args = parser.parse_args()
    sizes = sorted(set(args.rows))
    passed = True
    print(f"detectors: {args.detectors}; {os.cpu_count()} CPUs; extra flags: {' '.join(args.extra) or 'none'}")
    with tempfile.TemporaryDirectory(prefix="pass-memory-") as temporary, StaticServer() as server:
        scratch = Path(temporary)
        if not args.no_demo:
            output = scratch / "demo"
            result = measure(job(["demo", f"--output={output}", f"--detectors={args.detectors}", *args.extra]))
            passed &= _report("demo", result, _stats(output), DEMO_TARGET_MIB)
        photos = distinct_photos(max(sizes, default=0))
        urls = [server.add(f"/1/{100000 + i}_abcdef0123.jpg", image(data)) for i, data in enumerate(photos)]
        del photos  # served from the server's routes; the copy here is not needed
        peaks: dict[int, float] = {}
        for rows in sizes:
            output = scratch / f"out-{rows}"
            argv = ["run", f"--input={write_metadata(urls, rows, scratch)}", f"--output={output}",
                    f"--allowed_hosts={server.host}", "--per_host_rps=0", "--per_owner_cap=0",
                    f"--detectors={args.detectors}", *args.extra]
            result = measure(job(argv))
            target = ROWS_TARGET[1] if rows >= ROWS_TARGET[0] and args.detectors != "none" else None
            passed &= _report(f"{rows:,} rows", result, _stats(output), target)
            peaks[rows] = result["tree_mib"]
    for line in growth_lines(peaks):
        print(line)
    raise SystemExit(0 if passed else 1)


def growth_lines(peaks: dict[int, float]) -> list[str]:
    """Whether the tree's peak (MiB, by rows) grows with rows, and, where the largest run is under the 10,000-row
    target, the peak its trend projects there: only from runs at least PROJECTED_SPAN rows apart (10 and 20 rows
    gave a 42 MiB wobble as +4,200 MiB per 1,000 rows and a projection of 44 GB, beside "does not grow")."""
    if len(peaks) < 2:
        return []
    (low, low_peak), (high, high_peak) = min(peaks.items()), max(peaks.items())
    slope = (high_peak - low_peak) / (high - low) * 1000
    grows = high_peak > low_peak * GROWTH[0] and high_peak - low_peak > GROWTH[1]
    lines = [f"peak from {low:,} to {high:,} rows: {low_peak:,.0f} -> {high_peak:,.0f} MiB ({slope:+,.0f} MiB per "
             f"1,000 rows): {'GROWS with rows' if grows else 'does not grow with rows'}"]
    if high >= ROWS_TARGET[0]:
        return lines
    if high - low < PROJECTED_SPAN:
        return [*lines, f"not projected to {ROWS_TARGET[0]:,} rows: runs {high - low:,} rows apart give no slope (at "
                        f"least {PROJECTED_SPAN:,} apart)"]
    projected = high_peak + max(slope, 0) * (ROWS_TARGET[0] - high) / 1000
    return [*lines, f"projected at {ROWS_TARGET[0]:,} rows: {projected:,.0f} MiB (target < {ROWS_TARGET[1]:,} MiB)"]


if __name__ == "__main__":
    main()
