"""`pass-pipeline evaluate`: recall and keep-rate of the detectors on the labelled photographs."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from pipeline.detectors.fusion import Fusion, check_overrides, choose_fusion
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import load_registry, select, with_overrides
from pipeline.evaluation import evaluate, iter_summary, write
from pipeline.io.stopping import stops_saying
from pipeline.io.whole_file import TargetNotAFile, check_output
from pipeline.options import REDUCING_GAP_RANGE, UPPER_BOUNDS, valid_reducing_gap
from pipeline.photo_sets import heldout_record, metrics, score
from pipeline.printable import printable
from pipeline.usage import UsageError


def _problems(args: argparse.Namespace) -> list[str]:
    """The checks `run` makes of the options evaluate shares with it (--max_side=0 gave numbers, not an error)."""
    problems = [] if valid_reducing_gap(args.resize_reducing_gap) else [REDUCING_GAP_RANGE]
    if not 0 < args.max_side <= UPPER_BOUNDS["max_side"]:
        problems.append(f"--max_side must be positive and at most {UPPER_BOUNDS['max_side']}")
    if args.detect_tile_min_side < 0:
        problems.append("--detect_tile_min_side must not be negative")
    return problems


def evaluate_command(args: argparse.Namespace) -> int:
    """Stopped (SIGTERM, Ctrl-C), it says which of its files were written (--json, --record: each whole or not at all)
    and which not: its line was a run's ("nothing was published unless publishing had begun..."), and SIGTERM ended it
    by the signal's default, with no word (io/stopping.py)."""
    written: list[str] = []
    with stops_saying(lambda: _stopped(args, written)):
        return _evaluate(args, written)


def _stopped(args: argparse.Namespace, written: list[str]) -> str:
    """What a stopped evaluate left: the files it wrote whole, and those it did not write (as they were)."""
    wanted = [f"--json {args.json}"] * bool(args.json) + [f"--record {args.record}"] * bool(args.photos and args.record)
    left = [name for name in wanted if name not in written]
    said = "the evaluation did not finish"
    if written:
        said += f"; {' and '.join(written)} written"
    if left:
        said += f"; {' and '.join(left)} not written (as {'they were' if len(left) > 1 else 'it was'})"
    return said if wanted else f"{said}; nothing was written"


def _evaluate(args: argparse.Namespace, written: list[str]) -> int:
    """Its refusals are UsageErrors: pass-pipeline's error line on stderr, escaped whole (`said`: a name as typed, a
    record's text), exit 2. Evaluate printed them on stdout as `evaluate: …`, where a script reading its result read
    them as one, and where every other command's usage errors are not."""
    problems = _problems(args)
    if problems:
        raise UsageError("; ".join(problems))
    if not args.photos:
        # They say which package photographs to score: without them the builtin set was scored, a minute, and the
        # flag ignored unsaid (a comparison of decision rules on an earlier --json was the builtin set's).
        for flag, given in (("--record", args.record), ("--scores", args.scores), ("--split", args.split)):
            if given:
                raise UsageError(f"{flag} names what to score of the package photographs: give --photos too")
    if args.json:
        if args.photos and args.record and _same_file(args.json, args.record):
            # The result was written over the record (a name typed twice), its every earlier measurement lost, and then
            # "not recorded: ... is not a held-out record", exit 2.
            raise UsageError(f"--json {args.json} is the --record file {args.record}: the result would be written "
                             "over the record, every measurement in it lost; give --json another file")
        try:  # refused before the scoring, as --record is: after it, the result was lost and the record not written
            check_output("--json", args.json)  # a link, no file, a missing folder, a dataset's folder
        except TargetNotAFile as err:
            raise UsageError(str(err)) from None
    specs = with_overrides(select(load_registry(args.model_registry or None), args.detectors),
                           args.detect_thresholds, "")
    fusion = choose_fusion(args.fusion, specs, args.model_registry or "")
    check_overrides(fusion, specs, [item.split("=", 1)[0].strip() for item in args.detect_thresholds.split(",")])
    runtime = RuntimeConfig(tile_min_side=args.detect_tile_min_side)
    if args.photos:
        return _evaluate_photos(args, specs, runtime, fusion, written)
    result = evaluate(specs, runtime, args.max_side, fusion, args.resize_reducing_gap)
    for line in iter_summary(result):
        # Each line names detectors as a --model_registry file names them, which may hold any text: escaped
        # (printable), as its escapes drove the terminal and its line break printed a forged result line of its own
        print(printable(line))
    if args.json:
        write(result, args.json, written, f"--json {args.json}")  # noted once renamed into place, a stop after it too
    return 0 if result["combined"]["recall"] == 1.0 else 1


def _evaluate_photos(args: argparse.Namespace, specs: list, runtime: RuntimeConfig, fusion: Fusion | None,
                     written: list[str]) -> int:
    """The package photographs of one split; fails (1) unless every image with a human is removed."""
    split = args.split or "heldout"  # no default in the parser: --split given without --photos is refused
    measurement = None
    try:
        if args.record:  # only then: it reads a --scores file once more, before the detectors would run
            measurement = heldout_record.Measurement(
                split, fusion, score.storage_of(args.scores or None, args.resize_reducing_gap),
                tuple(spec.name for spec in specs), args.detect_thresholds, args.max_side,
                args.detect_tile_min_side, args.model_registry)
            heldout_record.check(Path(args.record), measurement)
            # After check, which refuses a link naming --record's remedy. A file where its folder should be was a
            # traceback once the split was scored (the folder made as the record was written); written into a
            # dataset's folder (a release's evaluation kept with it), a file its manifest does not list: verify
            # refused the dataset from then on, and a refresh verifying it as its previous release.
            check_output("--record", args.record, folder_made=True)
        result = score.evaluate_photos(Path(args.photos), split, specs, runtime, args.max_side, fusion,
                                       args.scores or None, args.resize_reducing_gap)
    except (score.PhotoSetError, TargetNotAFile) as error:
        raise UsageError(str(error)) from None
    except heldout_record.RecordError as error:
        raise UsageError(f"not recorded: {error}") from None
    for line in metrics.iter_summary(result):
        print(printable(line))  # a registry's detector names, escaped as `_evaluate`'s lines are
    if args.json:
        write(result, args.json, written, f"--json {args.json}")  # noted once renamed into place, a stop after it too
    if measurement is not None:
        try:
            added = heldout_record.append(Path(args.record), measurement, result, _today(), written,
                                          f"--record {args.record}")
        except heldout_record.RecordError as error:
            raise UsageError(f"not recorded: {error}") from None
        print(f"recorded in {printable(args.record)}: {added['split']}, {added['date']}, stored by "
              f"{added['stored_by']}")
    return 0 if result["combined"]["recall"]["rate"] == 1.0 else 1


def _same_file(one: str, other: str) -> bool:
    """Whether two local paths name one file: however spelt (`./`, `..`), through a link, or as two hard links."""
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them is not there yet: two files
        return False


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()
