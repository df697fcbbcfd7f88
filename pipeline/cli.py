"""`pass-pipeline` (or `python -m pipeline`): run, verify, demo.

Flags follow Beam's style (--name=value); any flag we do not define is a Beam pipeline option
and passes through, so `--runner=DataflowRunner --project=...` work as with any Beam job.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from pipeline.build import build
from pipeline.detectors.handler import GpuNotActiveError
from pipeline.detectors.registry import RegistryError
from pipeline.options import PassOptions, validate
from pipeline.release import ReleaseError
from pipeline.sinks import matching, read_bytes, write_json
from pipeline.sources.flickr_api import API_METRICS, CredentialsError

# The local default: Beam's DirectRunner first tries to download the Prism runner binary from
# the internet (a DNS hang without network, then a fallback). FnApiRunner never reaches out,
# and supports --direct_num_workers with --direct_running_mode=multi_processing.
LOCAL_RUNNER = "FnApiRunner"
OUTPUT_MARKERS = ("manifest.json", "stats.json")


class UsageError(Exception):
    pass


MONTH_TOKEN = "{YYYY-MM}"


def expand_month(argv: Sequence[str], now: dt.datetime | None = None) -> list[str]:
    """`--output=gs://b/releases/{YYYY-MM}` -> the launch month (UTC): a scheduled monthly launch
    whose request body cannot compute dates still writes each release under its own prefix."""
    month = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m")
    return [arg.replace(MONTH_TOKEN, month) for arg in argv]


def pipeline_options(argv: Sequence[str]) -> PipelineOptions:
    options = PipelineOptions(expand_month(argv))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    problems = validate(options.view_as(PassOptions))
    if problems:
        raise UsageError("; ".join(problems))
    return options


def check_output(output: str, overwrite: bool) -> None:
    """A run never silently mixes its files with an earlier run's."""
    earlier = [name for name in OUTPUT_MARKERS if FileSystems.exists(FileSystems.join(output, name))]
    if "manifest.json" in earlier and json.loads(read_bytes(FileSystems.join(output, "manifest.json"))).get("release"):
        raise UsageError(f"{output} is a published release; releases are never modified, not even with --overwrite")
    if earlier and not overwrite:
        raise UsageError(f"{output} already holds a dataset ({', '.join(earlier)}); pass --overwrite to replace it")
    if earlier:
        stale = [path for pattern in ("webdataset/*", "parquet/*", "tfrecord/*", "rejections/*", "near_dup_index/*",
                                      "review/*", *OUTPUT_MARKERS, "ATTRIBUTION.csv")
                 for path in matching(FileSystems.join(output, pattern))]
        if stale:
            FileSystems.delete(stale)


def check_input(pattern: str) -> None:
    if not matching(pattern):
        raise UsageError(f"--input {pattern!r} matches no file")


def preflight(opts: PassOptions, runner: str) -> None:
    """Fails at launch, not on a worker: unknown detectors, a bad registry, a missing or altered
    model file (sha256), and — when the job runs here — a GPU that was required but is not used.
    On Dataflow the launcher has no GPU; each worker's model load makes the same GPU check."""
    from pipeline.build import detectors_of, runtime_of
    from pipeline.detectors.handler import create_session
    from pipeline.detectors.registry import read_model

    specs = detectors_of(opts)
    local = runner in (LOCAL_RUNNER, "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")
    for spec in specs:
        if opts.require_gpu and local:
            create_session(spec, runtime_of(opts))  # reads and checks the model, then the provider
        else:
            read_model(spec)
    if opts.require_gpu and not specs:
        raise UsageError("--require_gpu with --detectors=none: nothing would run on the GPU")


def run(argv: Sequence[str], overwrite: bool = False) -> dict:
    """Runs the job to completion and returns its stats (stats.json)."""
    options = pipeline_options(argv)
    opts = options.view_as(PassOptions)
    if opts.source == "yfcc" and opts.input:
        check_input(opts.input)
    check_output(opts.output, overwrite)
    preflight(opts, options.view_as(StandardOptions).runner)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, opts)
    result = pipeline.run()
    result.wait_until_finish()
    return record_api_calls(opts.output, api_calls(result))


def api_calls(result: PipelineResult) -> dict[str, int]:
    """Flickr API calls by method, summed over every worker (Beam counters of FlickrClient)."""
    counters = result.metrics().query(MetricsFilter().with_namespace(API_METRICS))["counters"]
    calls: dict[str, int] = {}
    for counter in counters:
        calls[counter.key.metric.name] = calls.get(counter.key.metric.name, 0) + int(counter.committed or 0)
    return dict(sorted(calls.items()))


def record_api_calls(output: str, calls: dict[str, int]) -> dict:
    """Adds "api_calls" to stats.json once the job is done (counters are final only then) and
    updates stats.json's entry in the manifest. Returns the stats."""
    stats_path = FileSystems.join(output, "stats.json")
    stats = json.loads(read_bytes(stats_path))
    stats["api_calls"] = calls
    entry = write_json(output, "stats.json", stats)
    manifest_path = FileSystems.join(output, "manifest.json")
    manifest = json.loads(read_bytes(manifest_path))
    manifest["files"] = [{**f, **entry} if f["path"] == "stats.json" else f for f in manifest["files"]]
    write_json(output, "manifest.json", manifest)
    return stats


def summary(output: str, stats: dict) -> str:
    reasons = ", ".join(f"{stage}/{reason}: {n}" for stage, by_reason in stats["rejections_by_stage"].items()
                        for reason, n in by_reason.items())
    return (
        f"kept {stats['kept']} of {stats['input_rows']} input rows "
        f"({'all accounted for' if stats['accounted'] else 'NOT ALL ACCOUNTED FOR'})\n"
        f"  rejected: {reasons or 'none'}\n"
        f"  dataset:     {output}/webdataset, {output}/parquet, {output}/tfrecord\n"
        f"  rejections:  {output}/rejections\n"
        f"  stats:       {output}/stats.json   manifest: {output}/manifest.json\n"
        f"  attribution: {output}/ATTRIBUTION.csv"
    )


def _demo(output: str, extra: Sequence[str]) -> int:
    from pipeline.demo import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    with StaticServer() as server, tempfile.TemporaryDirectory(prefix="pass-demo-") as scratch:
        metadata = build_demo_world(server, scratch)
        print(f"demo: serving {server.route_count} photos on http://{server.host}, metadata {metadata}")
        argv = [f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", "--shards=2",
                *extra]
        stats = run(argv, overwrite=True)
    print(summary(output, stats))
    return 0


def _verify(release: str) -> int:
    from pipeline.verify import verify

    problems = list(verify(release))
    for problem in problems:
        print(f"{problem.path}: {problem.message}")
    print(f"{release}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 0 if not problems else 1


def _refresh(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from pipeline import release
    from pipeline.verify import verify

    name = args.release or release.default_name()
    target = release.release_dir(args.output, name)
    previous = args.previous.rstrip("/") or None
    if previous == "latest":  # the monthly schedule: whatever was published last (none: the first release)
        previous = release.latest_release(args.output)
        if previous and previous.rstrip("/").rsplit("/", 1)[-1] == name:
            raise UsageError(f"release {name} is already published: {previous}")
    release.check_new_release(target, previous)
    if previous:
        problems = list(verify(previous))
        if problems:
            raise UsageError(f"the previous release {previous} does not match its manifest "
                             f"({problems[0].path}: {problems[0].message}); run `pass-pipeline verify`")
    release.clean_partial_writes(target)
    argv = release.refresh_argv(previous, args.output, name, rest, None)
    stats = run(argv, overwrite=True)  # only an unpublished (resumed) release can be here: checked above
    log = release.finish(target, previous, name)
    print(summary(target, stats))
    if log:
        removed = sum(len(ids) for ids in log["removed"].values())
        print(f"  changes: {len(log['added'])} added, {removed} removed, {log['unchanged']} unchanged "
              f"(CHANGELOG.md)")
    return 0 if stats["accounted"] else 3


def _evaluate(args: argparse.Namespace) -> int:
    from pipeline.detectors.handler import RuntimeConfig
    from pipeline.detectors.registry import load_registry, select, with_overrides
    from pipeline.evaluation import evaluate, iter_summary, write

    specs = with_overrides(select(load_registry(args.model_registry or None), args.detectors),
                           args.detect_thresholds, "")
    result = evaluate(specs, RuntimeConfig(tile_min_side=args.detect_tile_min_side), args.max_side)
    for line in iter_summary(result):
        print(line)
    if args.json:
        write(result, args.json)
    return 0 if result["combined"]["recall"] == 1.0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pass-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="build a dataset; see `pass-pipeline run --help`", add_help=False)
    run_cmd.add_argument("--overwrite", action="store_true", help="replace a dataset already in --output")
    run_cmd.add_argument("-h", "--help", action="store_true")
    verify_cmd = commands.add_parser("verify", help="re-check every file of a release against its manifest")
    verify_cmd.add_argument("release", help="the release's folder (local or gs://), where manifest.json is")
    evaluate_cmd = commands.add_parser("evaluate", help="recall and keep-rate of the detectors on a labelled set "
                                       "of real photographs that packages ship, plus composites")
    evaluate_cmd.add_argument("--detectors", default="default")
    evaluate_cmd.add_argument("--model_registry", default="")
    evaluate_cmd.add_argument("--detect_tile_min_side", type=int, default=400)
    evaluate_cmd.add_argument("--detect_thresholds", default="", help="as for run: DETECTOR.CLASS=SCORE,...")
    evaluate_cmd.add_argument("--max_side", type=int, default=512)
    evaluate_cmd.add_argument("--json", default="", help="also write the full result (every score) here")
    review_cmd = commands.add_parser("review", help="the human-review loop")
    review_actions = review_cmd.add_subparsers(dest="action", required=True)
    apply_cmd = review_actions.add_parser("apply", help="fold a reviewer's decisions CSV into the decisions store "
                                          "that the next run reads with --review_decisions")
    apply_cmd.add_argument("decisions", help="CSV: photo_id, decision (accept|reject_human|reject_other), note")
    apply_cmd.add_argument("--store", required=True, help="the cumulative decisions CSV (local or gs://)")
    refresh_cmd = commands.add_parser(
        "refresh", add_help=False,
        help="write the next release under OUTPUT/releases/NAME from the previous one (see pipeline/release.py)")
    refresh_cmd.add_argument("--previous", default="", help="the previous release's folder; none for the first")
    refresh_cmd.add_argument("--output", required=True, help="the releases' root: OUTPUT/releases/NAME is written")
    refresh_cmd.add_argument("--release", default="", help="the new release's name (default: launch month YYYY-MM)")
    demo_cmd = commands.add_parser("demo", help="run the whole job on the bundled demo world")
    demo_cmd.add_argument("--output", default="demo-output", help="where the demo dataset goes")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            return _demo(str(Path(args.output).resolve()), rest)
        if args.command == "verify":
            return _verify(args.release)
        if args.command == "refresh":
            return _refresh(args, rest)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "review":
            from pipeline.review import apply_decisions

            applied, total = apply_decisions(args.decisions, args.store)
            print(f"review: {applied} decision(s) applied; {args.store} now holds {total}")
            return 0
        if args.help:
            PassOptions(["--help"])
            return 0
        stats = run(rest, overwrite=args.overwrite)
        print(summary(PassOptions(expand_month(rest)).output, stats))
        return 0 if stats["accounted"] else 3
    except (UsageError, CredentialsError, RegistryError, GpuNotActiveError, ReleaseError, ValueError) as err:
        print(f"pass-pipeline: error: {err}", file=sys.stderr)
        return 2
