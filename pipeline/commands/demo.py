"""`pass-pipeline demo`: the whole job on the bundled demo world, served on 127.0.0.1."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from pipeline.commands.run import run, summary
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer


def demo(output: str, extra: Sequence[str]) -> int:
    with StaticServer() as server, tempfile.TemporaryDirectory(prefix="pass-demo-") as scratch:
        metadata = build_demo_world(server, scratch)
        print(f"demo: serving {server.route_count} photos on http://{server.host}, metadata {metadata}")
        argv = [f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", "--shards=2",
                *extra]
        stats = run(argv, overwrite=True)
    print(summary(output, stats))
    return 0


