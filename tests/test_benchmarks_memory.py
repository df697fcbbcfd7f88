"""benchmarks/memory.py measures a run's whole process tree, not only its largest process."""

from __future__ import annotations

import sys

from benchmarks.memory import measure

# A parent holding 150 MiB while its child holds 250 MiB, both alive for a second.
TREE = """
import subprocess, sys, time
held = bytearray(150 * 2**20)
child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(250 * 2**20); time.sleep(1.5)"])
time.sleep(1.0)
child.wait()
"""


def test_the_peak_sums_every_process_of_the_tree():
    result = measure([sys.executable, "-c", TREE])
    assert result["processes"] >= 2
    # ru_maxrss: at least the child alone. No upper bound: Linux counts a forked process's pages
    # before its exec, so inside a large pytest process the figure can be the test process's size.
    assert result["largest_mib"] >= 250
    assert result["tree_mib"] >= 390  # both at once


def test_a_trend_over_too_few_rows_is_not_projected_to_10000_rows():
    """At 10 and 20 rows a 42 MiB wobble read as +4,200 MiB per 1,000 rows and "projected at 10,000 rows: 44,000
    MiB", beside "does not grow with rows": the slope of a span that short is noise. It is projected from runs at
    least 100 rows apart, and said to be not projected otherwise."""
    from benchmarks.memory import growth_lines

    short = growth_lines({10: 2000.0, 20: 2042.0})
    assert short[0].startswith("peak from 10 to 20 rows: 2,000 -> 2,042 MiB") and "does not grow" in short[0]
    assert short[1] == "not projected to 10,000 rows: runs 10 rows apart give no slope (at least 100 apart)"
    wide = growth_lines({400: 391.0, 1600: 603.0})
    assert "(+177 MiB per 1,000 rows): GROWS with rows" in wide[0]
    assert wide[1] == "projected at 10,000 rows: 2,087 MiB (target < 4,096 MiB)"
    assert growth_lines({400: 391.0}) == [] and len(growth_lines({10_000: 900.0, 400: 391.0})) == 1
