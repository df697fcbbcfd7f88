"""What the pins of a refresh's previous release (`pipeline/io/file_pins.py`) add to the job graph: the steps that
read its files are each pickled into the graph with their arguments, and each carried the whole `Pins` (every file
verify read) before `Pins.only`; now each carries the entries of the files it reads.

    .venv/bin/python -m benchmarks.pins_size --shards 4000 --ledger 1000 --other 5000

A release folder of empty files is made (the steps only list it when the graph is built) and pinned as verify pins
one (a version, the check's name and the manifest's size and sha256 per file); the refresh's steps that carry pins
(ReadRelease, CarriedIds, and ReadParquetFiles for --ledger; --previous_index's is read the same way) are built and
the job graph's size is printed, with each step's carried pins as Beam pickles them, against the same steps given the
whole `Pins` (`Pins.only` made to return it all), measured in the same run.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from unittest import mock

import apache_beam as beam
from apache_beam.internal import pickler
from apache_beam.pipeline import PipelineVisitor

from benchmarks import arguments
from pipeline.io.file_pins import VERIFIED, Pins
from pipeline.io.files import ReadParquetFiles
from pipeline.release.carry import CarriedIds, ReadRelease
from pipeline.usage import OneLineParser, usage_said


def pinned_release(folder: Path, shards: int, ledger: int, other: int) -> Pins:
    pins = Pins(folders={str(folder)})
    names = [*(f"parquet/pass-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)),
             *(f"ledger/ledger-{i:05d}.parquet" for i in range(ledger)),
             *(f"rejections/rejections-{i:05d}.parquet" for i in range(other))]
    for kind in ("parquet", "ledger", "rejections"):
        (folder / kind).mkdir()
    for i, name in enumerate(names):
        (folder / name).touch()
        pin = ("inode", 2049, 10_000_000 + i, 250_000_000 + i, 1_764_000_000_000_000_000 + i,
               1_764_000_000_000_000_000 + i)
        pins.add(str(folder / name), pin, VERIFIED, (250_000_000 + i, hashlib.sha256(name.encode()).hexdigest()))
    return pins


def carried_pins(pipeline: beam.Pipeline) -> dict[str, list[Pins]]:
    """The `Pins` each step carries (its arguments, its DoFn's fields), by its label (as tests/conftest.py's)."""
    found: dict[str, list[Pins]] = {}

    class Visitor(PipelineVisitor):
        def visit_transform(self, applied) -> None:
            fn = getattr(applied.transform, "fn", None)
            held = [*(getattr(applied.transform, "args", None) or ()), *getattr(fn, "__dict__", {}).values()]
            if pins := [value for value in held if isinstance(value, Pins)]:
                found[applied.full_label] = pins

    pipeline.visit(Visitor())
    return found


def graph(folder: Path, pins: Pins) -> tuple[int, dict[str, int], dict[str, int]]:
    """(the job graph's bytes, each step's carried entries, each step's pickled carried pins' bytes)."""
    pipeline = beam.Pipeline()
    _ = pipeline | "CarryOver" >> ReadRelease(str(folder), "r1", pins)
    _ = pipeline | "CarriedIds" >> CarriedIds(str(folder), "r1", pins)
    _ = pipeline | "ReadLedger" >> ReadParquetFiles([f"{folder}/ledger/*.parquet"], pins)
    carried = carried_pins(pipeline)
    return (pipeline.to_runner_api().ByteSize(), {label: sum(len(held.versions) for held in each)
                                                  for label, each in carried.items()},
            {label: sum(len(pickler.dumps(held)) for held in each) for label, each in carried.items()})


@usage_said("pins_size")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.pins_size", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=arguments.count(), default=4000)
    parser.add_argument("--ledger", type=arguments.count(0), default=1000)
    parser.add_argument("--other", type=arguments.count(0), default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "r1"
        folder.mkdir()
        pins = pinned_release(folder, args.shards, args.ledger, args.other)
        print(f"{len(pins.versions):,} files pinned; the whole Pins pickled: {len(pickler.dumps(pins)):,} bytes")
        with mock.patch.object(Pins, "only", lambda self, names: self):
            whole = graph(folder, pins)
        subset = graph(folder, pins)
    for name, (size, entries, pickled) in (("whole Pins per step", whole), ("Pins.only", subset)):
        print(f"{name}: job graph {size:,} bytes; carried pins {sum(pickled.values()):,} bytes, "
              f"{sum(entries.values()):,} entries")
        for label in sorted(entries):
            print(f"    {label}: {entries[label]:,} entries, {pickled[label]:,} bytes")
    print(f"job graph: {subset[0] / whole[0]:.3f}x the whole Pins' size")


if __name__ == "__main__":
    main()
