"""`pass-pipeline demo`: the whole job on the bundled demo world, served on 127.0.0.1."""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from pipeline.commands.run import UsageError, run, summary
from pipeline.fixtures.demo_world import METADATA_NAME, build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.io.files import matching
from pipeline.io.layout import MANIFEST, PUBLISHING, STAGING, holds_run, manifest_of
from pipeline.io.stopping import StopSignals, local_folder
from pipeline.printable import printable

SCRATCH_PREFIX = "pass-demo-"


def is_demo_output(output: str) -> bool:
    """The folder's dataset was made by `demo`: its recorded input is a demo world's metadata."""
    manifest = manifest_of(output)
    inputs = manifest.get("inputs") if isinstance(manifest, dict) else None
    recorded = inputs.get("input") if isinstance(inputs, dict) else None
    if not isinstance(recorded, str):
        return False
    folder, name = posixpath.split(recorded)
    return name == METADATA_NAME and posixpath.basename(folder).startswith(SCRATCH_PREFIX)


def is_demo_folder(output: str) -> bool:
    """The folder holds nothing of a run, or a demo's: its dataset, or what a demo stopped while publishing left (no
    manifest yet, old and new run files, and the stopped run's plan beside its staged manifest, which the next run
    publishes first). A stopped demo's folder was otherwise refused by the demo for good."""
    if not holds_run(output) or is_demo_output(output):
        return True
    if FileSystems.exists(FileSystems.join(output, MANIFEST)):
        return False
    plans = matching(FileSystems.join(output, STAGING, "*", PUBLISHING))
    return any(is_demo_output(plan[: -len(PUBLISHING) - 1]) for plan in plans)


def demo(output: str, extra: Sequence[str]) -> int:
    # Run again and again into its own folder (the quick start), never over another dataset: only a folder
    # holding nothing of a run, or an earlier demo's dataset (published, or stopped while publishing), is replaced.
    if not is_demo_folder(output):
        raise UsageError(f"{output} holds a dataset that is not a demo's; the demo replaces only its own: "
                         "give another --output")
    # SIGTERM is a stop from the start (StopSignals), not only once the run holds its lock: its default ended the
    # process before then (the run's launch checks take seconds), leaving the world folder in TMPDIR.
    with StopSignals(), StaticServer() as server, local_folder(lambda: tempfile.mkdtemp(prefix=SCRATCH_PREFIX)) \
            as scratch:
        metadata = build_demo_world(server, scratch)
        # The metadata file goes with the world when the demo ends: its rows are written by the module named. Its
        # folder is TMPDIR's as the environment gives it, escaped (printable): as it was, its escapes drove the
        # terminal and its line break printed a forged line of its own.
        print(f"demo: serving {server.route_count} photos on http://{server.host}, metadata {printable(str(metadata))} "
              "(removed when the demo ends; its rows: pipeline/fixtures/demo_world.py)")
        argv = [f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", "--shards=2",
                *extra]
        stats = run(argv, overwrite=True)
    print(summary(output, stats))
    return 0
