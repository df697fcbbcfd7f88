"""Whether two runs wrote the same dataset, up to the local server's port: a speed change must not
change a release's bytes. Compares every file of two output folders: tar members and Parquet rows
with "127.0.0.1:PORT" in place of the port, other files byte for byte; manifest.json and
stats.json hold timings and the shards' sha256 (of bytes with the port inside) and are skipped.

    python -m pipeline demo --output /tmp/before --detectors=none   # before the change
    python -m pipeline demo --output /tmp/after --detectors=none    # after
    .venv/bin/python -m benchmarks.compare_outputs /tmp/before /tmp/after
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.usage import OneLineParser, usage_said

_PORT = re.compile(rb"127\.0\.0\.1:\d+")
_SKIPPED = ("manifest.json", "stats.json")


def _without_port(data: bytes) -> bytes:
    return _PORT.sub(b"127.0.0.1:PORT", data)


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None  # for the type checker: only regular files are read, and each has a reader
    return handle.read()


def _tar_members(path: Path) -> list[tuple[str, str]]:
    with tarfile.open(path) as tar:
        return [(member.name, hashlib.sha256(_without_port(_member_bytes(tar, member))).hexdigest())
                for member in tar.getmembers() if member.isfile()]


def same_file(first: Path, second: Path) -> bool:
    if first.suffix == ".tar":
        return _tar_members(first) == _tar_members(second)
    if first.suffix == ".parquet":
        rows = [_without_port(repr(pq.read_table(path).to_pylist()).encode()) for path in (first, second)]
        return rows[0] == rows[1]
    return first.read_bytes() == second.read_bytes()


@usage_said("compare_outputs")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.compare_outputs")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    for folder in (args.before, args.after):
        # Two folders not there held no file either side: "identical", exit 0, the check passed on nothing.
        if not folder.is_dir():
            parser.error(f"{folder} is {'no folder' if folder.exists() else 'not there'}: give a run's output folder")
        if not any(path.is_file() for path in folder.rglob("*")):
            parser.error(f"{folder} holds no file: give a run's output folder")
    files = sorted({path.relative_to(folder) for folder in (args.before, args.after)
                    for path in folder.rglob("*") if path.is_file() and path.name not in _SKIPPED})
    different = [name for name in files if not ((args.before / name).exists() and (args.after / name).exists()
                                                and same_file(args.before / name, args.after / name))]
    for name in files:
        print("DIFF" if name in different else "same", name)
    print("different" if different else "identical, up to the server port")
    raise SystemExit(1 if different else 0)


if __name__ == "__main__":
    main()
