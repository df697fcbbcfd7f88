"""benchmarks/scaling.py's verdict: linear when no time per image rises with the size and memory
does not rise faster than the rows; the first scaling run's table (docs/benchmark-history.md) passes,
a slower step does not."""

from __future__ import annotations

from benchmarks.scaling import compare

# The 2026-11-30 runs (docs/benchmark-history.md, "Scaling"): rows, wall seconds, tree peak MiB, step seconds.
MEASURED = [
    {"rows": 500, "seconds": 32.4, "tree_mib": 281, "steps": {"fetched": 19.9, "kept": 0.05}},
    {"rows": 2000, "seconds": 96.4, "tree_mib": 332, "steps": {"fetched": 78.0, "kept": 0.2}},
    {"rows": 10000, "seconds": 425.4, "tree_mib": 485, "steps": {"fetched": 393.0, "kept": 1.0}},
]


def test_the_measured_runs_scale_linearly():
    lines, linear = compare(MEASURED)
    assert linear and len(lines) == 2 and "GROWS" not in " ".join(lines)
    assert lines[0].startswith("500 -> 2,000: wall per image x0.74")


def test_a_step_slower_per_image_at_the_larger_size_is_caught():
    quadratic = [dict(MEASURED[0]), {**MEASURED[1], "steps": {**MEASURED[1]["steps"], "fetched": 78.0 * 4}}]
    lines, linear = compare(quadratic)
    assert not linear and "fetched x3.92 (GROWS)" in lines[0]


def test_memory_growing_faster_than_the_rows_is_caught():
    lines, linear = compare([MEASURED[0], {**MEASURED[1], "tree_mib": 281 * 5}])
    assert not linear and "peak memory x5.00 for x4.0 rows" in lines[0]


def test_a_tiny_step_is_not_flagged_for_noise():
    # 0.1 -> 0.3 ms per image is x3 but under the 2 ms floor: noise, not growth.
    runs = [{**MEASURED[0], "steps": {"kept": 0.05}}, {**MEASURED[1], "steps": {"kept": 0.6}}]
    assert compare(runs)[1]


def test_no_memory_figure_is_no_verdict_on_memory():
    lines, linear = compare([{**MEASURED[0], "tree_mib": 0}, {**MEASURED[1], "tree_mib": 0}])
    assert linear and lines[0].endswith("peak memory not measured")
