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
