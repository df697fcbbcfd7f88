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
    assert 250 <= result["largest_mib"] < 330  # ru_maxrss: the child alone
    assert result["tree_mib"] >= 390  # both at once
