"""What a monthly refresh of an unchanged YFCC dump costs: downloads, images normalised, and wall
time, against building the first release from the same dump, in one process.

The demo world's rows are repeated under new ids (`--copies`) and served on 127.0.0.1. With the
ledger of decided photo ids (stages/ledger.py) the refresh downloads nothing and re-hashes nothing:
every carried image is kept, every other row is skipped as already decided.

    .venv/bin/python -m benchmarks.refresh_unchanged [--copies 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks import arguments
from pipeline.cli import main as cli
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.usage import OneLineParser, usage_said


def world(server: StaticServer, folder: Path, copies: int) -> Path:
    lines: list[str] = []
    for copy in range(copies):
        for index, (_, name, title, credit, owner) in enumerate(DEMO_PHOTOS):
            photo_id = str(100_000 + copy * 100 + index)
            url = server.add(f"/1/{photo_id}_abcdef0123.jpg", image(demo_image(name)))
            lines.append(yfcc_line(len(lines) + 1, photo_id, url, title=title, owner_name=credit,
                                   owner_nsid=owner))
    path = folder / "dump.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@usage_said("refresh_unchanged")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.refresh_unchanged", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=arguments.count(), default=20, help="copies of the 10 demo photos in the dump")
    args = parser.parse_args()
    with StaticServer() as server, tempfile.TemporaryDirectory() as scratch:
        root, dump = Path(scratch) / "root", world(server, Path(scratch), args.copies)
        common = [f"--input={dump}", f"--allowed_hosts={server.host}", "--detectors=none", "--runner=FnApiRunner"]
        runs = {}
        for name, previous in (("first", ""), ("refresh", str(root / "releases" / "first"))):
            server.hits.clear()
            started = time.perf_counter()
            argv = ["refresh", f"--output={root}", f"--release={name}", *common]
            assert cli([*argv, f"--previous={previous}"] if previous else argv) == 0
            stats = json.loads((root / "releases" / name / "stats.json").read_text())
            runs[name] = {"seconds": time.perf_counter() - started, "downloads": sum(server.hits.values()),
                          "normalised": stats["steps"].get("fetched", {}).get("records", 0),
                          "kept": stats["kept"], "rows": stats["input_rows"]}
    for name, run in runs.items():
        print(f"{name:8s} rows {run['rows']:5d}  downloads {run['downloads']:5d}  normalised {run['normalised']:5d}"
              f"  kept {run['kept']:5d}  {run['seconds']:6.1f} s")
    first, refresh = runs["first"], runs["refresh"]
    print(f"refresh / first: downloads {refresh['downloads']}/{first['downloads']}, "
          f"wall time {refresh['seconds'] / first['seconds']:.2f}x")
    if refresh["downloads"] or refresh["normalised"] or refresh["kept"] != first["kept"]:
        raise SystemExit("FAILED: the refresh of an unchanged dump downloaded or re-hashed images, or lost some")


if __name__ == "__main__":
    main()
