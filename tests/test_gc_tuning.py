"""The raised first garbage-collection threshold: in place in every process that imports the stages,
never lowering one set higher, and collection still happening."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pipeline.stage  # noqa: F401  (installs the threshold, as in every job process)
from pipeline import gc_tuning


def test_a_process_that_imports_the_stages_collects_young_objects_less_often():
    code = "import gc; before = gc.get_threshold(); import pipeline.stage; print(before[0], *gc.get_threshold())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, young, middle, old = (int(value) for value in done.stdout.split())
    assert before == 700 and (young, middle, old) == (10_000, 10, 10)  # CPython's defaults, less the first


def test_a_higher_threshold_is_kept_and_a_lower_one_raised():
    saved = gc.get_threshold()
    try:
        gc.set_threshold(50_000, 5, 5)
        assert gc_tuning.install() == (50_000, 5, 5)
        gc.set_threshold(100, 5, 5)
        assert gc_tuning.install() == (10_000, 5, 5)
    finally:
        gc.set_threshold(*saved)


def test_cycles_are_still_collected_on_their_own():
    """Collection is only made rarer, not switched off: enough new containers trigger it."""
    class Node:
        pass

    node = Node()
    node.self = node  # a cycle: only the collector frees it
    gone = weakref.ref(node)
    del node
    assert gc.isenabled() and gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD
    keep = [[] for _ in range(12 * gc_tuning.YOUNG_THRESHOLD)]  # allocations past the threshold
    assert gone() is None and keep
