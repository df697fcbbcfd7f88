"""`pass-pipeline demo`: the whole job on the bundled demo world, served on 127.0.0.1."""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Sequence

from pipeline.commands.run import UsageError, run, summary
from pipeline.fixtures.demo_world import METADATA_NAME, build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.io.layout import holds_run, manifest_of

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


def demo(output: str, extra: Sequence[str]) -> int:
    # Run again and again into its own folder (the quick start), never over another dataset: only a folder
    # holding nothing of a run, or an earlier demo's dataset, is replaced.
    if holds_run(output) and not is_demo_output(output):
        raise UsageError(f"{output} holds a dataset that is not a demo's; the demo replaces only its own: "
                         "give another --output")
    with StaticServer() as server, tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as scratch:
        metadata = build_demo_world(server, scratch)
        print(f"demo: serving {server.route_count} photos on http://{server.host}, metadata {metadata}")
        argv = [f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", "--shards=2",
                *extra]
        stats = run(argv, overwrite=True)
    print(summary(output, stats))
    return 0
