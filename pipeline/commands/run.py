"""`pass-pipeline run`: checks at launch, the job, then its stats and a summary.

Flags follow Beam's style (--name=value); any flag we do not define is a Beam pipeline option
and passes through, so `--runner=DataflowRunner --project=...` work as with any Beam job.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)
from apache_beam.runners.runner import PipelineResult

from pipeline.build import build, models_of
from pipeline.detectors.registry import RegistryError
from pipeline.flickr.client import API_METRICS
from pipeline.io import progress, report
from pipeline.io.file_pins import LAUNCH_CHECK, UNCHECKED, ChangedSinceChecked, Pins, canonical, pin_of
from pipeline.io.file_reads import dot_segment_problem, open_regular_file, size_and_kind, spaced_path_problem
from pipeline.io.files import canonical_path, glob_matches, is_glob, is_remote, link_left_out, matching
from pipeline.io.layout import (
    FORMAT_FOLDERS,
    MANIFEST,
    STAGED_LISTS,
    STAGING,
    dataset_folder_above,
    finish_interrupted_publish,
    holds_dataset,
    holds_run,
    is_published,
    linked_run_paths,
    misplaced_run_paths,
    publish,
    published_folder_above,
    remove_staging,
    run_files,
    staging_dir,
)
from pipeline.io.lock import LOCK, OutputLock, OutputLocked, OutputNotWritable
from pipeline.io.parquet_footer import check_footer
from pipeline.io.process_memory import TreeMemory, peak_rss_mb
from pipeline.io.stopping import StopSignals, local_folder
from pipeline.io.work_cache import remove_stale_temporaries
from pipeline.options import OPTIONS, PassOptions, split_list, validate
from pipeline.printable import printable
from pipeline.records import is_utf8_text, unusable_name
from pipeline.release import command_record as record
from pipeline.release.record_readers import check_row_groups
from pipeline.release.verify import verify
from pipeline.sources.input_files import compressed_another_way
from pipeline.sources.table import sniff as sniff_table
from pipeline.sources.table import table_layout
from pipeline.sources.yfcc import sniff
from pipeline.stages.decontaminate import STAGE as DECONTAMINATE
from pipeline.stages.decontaminate import UNREADABLE_EVAL_IMAGES, is_list_file
from pipeline.stages.ledger import IGNORED_ROWS, LEDGER_METRICS
from pipeline.stages.near_dedup import IGNORED_PREVIOUS_ROWS, PREVIOUS_INDEX_METRICS
from pipeline.usage import OneLineParser, UsageError

# The local default: Beam's DirectRunner first tries to download the Prism runner binary from
# the internet (a DNS hang without network, then a fallback). FnApiRunner never reaches out,
# and supports --direct_num_workers with --direct_running_mode=multi_processing.
LOCAL_RUNNER = "FnApiRunner"


class PublishFinished(UsageError):
    """This run found a run killed while publishing into its output and finished that publish, which made the output
    a published release: nothing more may be written there. A refresh rerun to finish its own release is done
    (`commands/refresh.py` tells it from another's); anything else is refused as any run into a release is."""

    def __init__(self, output: str, run_id: str) -> None:
        super().__init__(f"{output} is a published release; releases are never modified, not even with --overwrite "
                         f"(this run finished publishing run {run_id} there, which had been stopped while publishing)")
        self.output, self.run_id = output, run_id


class JobFailed(RuntimeError):
    """The job failed while running, on a ValueError raised inside a step: not a usage error (the
    command line maps a ValueError at launch to exit status 2), the job's own failure (exit 1)."""


class RunRefused(Exception):
    """The job ran but its outcome must not be published (fail closed): see `refusal`."""


# Download failures that say more about the network or the server than about the photo (a name that resolves to a
# private address: a resolver or network set up wrong, for every photo of that host). protocol_error too: a host
# answering what is no HTTP is that host's failure, but where most downloads meet it the cause is the run's own
# surroundings (a TLS-intercepting proxy, an image without CA certificates: every https host "fails" its handshake) or
# the image host serving most photos, and a release published then lacks most of its photos; one such host among
# many stays under the rate.
# Why a download failed that says more of the network between than of the photo: most downloads failing so is no
# network, a blocked crawler, a resolver set up wrong, a proxy that intercepts TLS or cuts every transfer short
# (a truncated_body: the photo's host may cut its own, but most of a run's bodies cut short is the path to them).
ENVIRONMENTAL = ("connection_error", "timeout", "deadline_exceeded", "rate_limited", "server_error",
                 "address_not_public", "protocol_error", "truncated_body")


MONTH_TOKEN = "{YYYY-MM}"


def expand_month(argv: Sequence[str], now: dt.datetime | None = None) -> list[str]:
    """`--output=gs://b/releases/{YYYY-MM}` -> the launch month (UTC): a scheduled monthly launch
    whose request body cannot compute dates still writes each release under its own prefix."""
    month = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m")
    return [arg.replace(MONTH_TOKEN, month) for arg in argv]


def _all_option_classes(cls: type[PipelineOptions] = PipelineOptions) -> list[type[PipelineOptions]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _all_option_classes(direct))]


class _OneLineBeamParser(OneLineParser, _BeamArgumentParser):
    """Beam's parser, but a value it cannot read (--max_side=abc) is one line naming the flag (usage.py), not
    argparse's usage of every Beam option (~180 lines) and an exit from inside the parser."""


def unknown_flags(argv: Sequence[str], command: str = "run") -> list[str]:
    """Flags neither the job nor Beam defines: a typo (--max_sid=300) must not silently become a
    run with the default. Parsed the way Beam parses, with every options class it knows. A word that is no flag's
    value, or a value a flag cannot take, is a UsageError naming `pass-pipeline COMMAND --help`."""
    parser = _OneLineBeamParser(prog=f"pass-pipeline {command}", allow_abbrev=False)
    for cls in dict.fromkeys(_all_option_classes()):
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(argv))
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]
    # A word that is no flag's value: Beam only warned ("Unparseable argument") and dropped it, so a glob the shell
    # expanded (`--input data/*.tsv` unquoted) ran on its first file alone, the others left out unsaid. After an
    # unknown flag, a word may be its value: the flag is named instead.
    words = [arg for arg in unknown if not arg.startswith("-")]
    if words and not flags:
        shown = ", ".join(repr(word) for word in words[:3]) + (f" and {len(words) - 3} more" if len(words) > 3 else "")
        raise UsageError(f"{shown}: not the value of any flag (a glob the shell expanded? quote it: "
                         f"--input='data/*.tsv'); see `pass-pipeline {command} --help`")
    return flags


def refuse_unknown_flags(argv: Sequence[str], command: str = "run", own: Sequence[str] = ()) -> None:
    """One line naming the flags neither the job, Beam nor the command (`own`: refresh's --previous…) defines."""
    if "--" in argv:  # argparse ends the flags there: those after it were called unknown, "did you mean" themselves
        raise UsageError("`--` ends the flags, so none after it would be read: give the flags without it; "
                         f"see `pass-pipeline {command} --help`")
    unknown = unknown_flags(argv, command)
    if unknown:
        hints = [_hint(flag, own) for flag in unknown]
        raise UsageError(f"unknown flag{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}; "
                         f"see `pass-pipeline {command} --help`")


def _hint(flag: str, own: Sequence[str] = ()) -> str:
    """An unknown flag with what was probably meant. A key or secret is never a flag's value (it would show in
    process lists, shell histories and the job's options): "did you mean --flickr_licenses?" said nothing of that."""
    close = difflib.get_close_matches(flag.lstrip("-"), [*own, *OPTIONS], n=1)  # own: a command's flags beside run's
    # A typo of a flag whose own name holds the word (--near_dup_key_block) is a typo, not a key
    if any(word in flag.lower() and not (close and word in close[0]) for word in ("key", "secret", "token",
                                                                                  "password")):
        return (f"{flag} (keys are read from FLICKR_API_KEY and FLICKR_API_SECRET, or a file or secret named by "
                "--flickr_credentials, never from a flag)")
    return f"{flag} (did you mean --{close[0]}?)" if close else flag


# The flags naming one path each (a list flag's items are stripped where it is read: spaces there do no harm).
SINGLE_PATHS = ("input", "output", "cache", "carry_over", "flickr_credentials", "model_registry")


def launch_options(argv: Sequence[str], command: str = "run", own: Sequence[str] = ()) -> PipelineOptions:
    """The pipeline options of a command that runs a job (`run`, `refresh`: its flags past its own, `own`), refused
    at once for a flag unknown or a job made later, and given to Beam's filesystems before the launch's first gs://
    call. Beam's storage client takes its credentials (--impersonate_service_account), project and audit header
    (--job_name) from the options its filesystems hold, which `Pipeline(options)` sets only as the job is built; and
    Beam keeps the credentials it first builds for the whole process (`apache_beam.internal.gcp.auth`). The launch's
    checks of --input and --output, its lock and a refresh's look for the latest release came first, with none: every
    gs:// call of the run after them, the job's writes, its publish and (on Dataflow) its staging among them, went as
    the user's own default credentials, not as the service account named. The options object is the run's own, which
    its job is given (the defaults set on it later are seen through it)."""
    refuse_unknown_flags(argv, command, own)
    options = PipelineOptions(list(argv))
    refuse_a_job_made_later(options)
    FileSystems.set_options(options)
    return options


def pipeline_options(argv: Sequence[str]) -> PipelineOptions:
    options = launch_options(expand_month(argv))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    opts = options.view_as(PassOptions)
    problems = validate(opts) + [problem for name in SINGLE_PATHS
                                 if (problem := spaced_path_problem(f"--{name}", getattr(opts, name, None)))]
    # Where the run writes: an object store's path holding '.', '..' or '//' names other objects than the checks read
    problems += [problem for name in ("output", "cache")
                 if (problem := dot_segment_problem(f"--{name}", getattr(opts, name, None)))]
    if problems:
        raise UsageError("; ".join(problems))
    return options


def refuse_a_job_made_later(options: PipelineOptions) -> None:
    """--template_location on Dataflow, which a Flex Template's launch passes to the program it runs: Beam's Dataflow
    runner then only writes the job's spec there and makes no job (`DataflowApplicationClient.create_job` returns
    none), and the launch service makes the job from that spec once this process has ended, successfully
    (https://cloud.google.com/dataflow/docs/guides/templates/configuring-flex-templates: the program must exit after
    `run`); which is why the monthly launch is a Cloud Run job running this command (terraform/launcher.tf), and no
    Flex Template. A run waits for its job to publish its files, and the wait for a job that does not exist yet
    returned at once (`DataflowPipelineResult.wait_until_finish`: DONE); its metrics then ended the run with "Can not
    query metrics. Job id is unknown." after its staging, and a stop meanwhile waited for the spec, then said that a
    job nobody would make "could not be cancelled". Refused at launch, in one line."""
    location = options.view_as(GoogleCloudOptions).template_location
    if location and submits_remotely(options.view_as(StandardOptions).runner):
        raise UsageError(f"--template_location={location[:200]}: on Dataflow, Beam only writes the job's spec there "
                         "and the job is made once this process has ended (what a Flex Template's launch does), so "
                         "no job could be waited for and its files could not be published; run pass-pipeline where "
                         "it can wait for the job (--runner=DataflowRunner without --template_location)")


def check_output(output: str, overwrite: bool) -> None:
    """A run never silently mixes its files with an earlier run's, and never replaces a finished
    dataset unasked. Leftovers of a killed run (files without a manifest) are replaced when this
    run publishes; nothing is deleted before this run has succeeded."""
    if is_published(output):
        raise UsageError(f"{output} is a published release; releases are never modified, not even with --overwrite")
    if MANIFEST in holds_run(output) and not overwrite:
        raise UsageError(f"{output} already holds a dataset (manifest.json); pass --overwrite to replace it")


def check_output_place(output: str) -> None:
    """Before the lock: an output inside a published release (immutable, however deep) or inside any other dataset's
    folder, or one whose run folders or files are links (a run deletes and writes through them, outside its output),
    or of the wrong kind (a file where a run writes a folder: publishing failed there after removing the old run
    files)."""
    if not is_remote(output) and (file := file_in_path(output)):  # was "cannot write to --output …: File exists"
        raise UsageError(f"--output {output} {'is' if file == output else f'lies under {file}, which is'} a file, "
                         "not a folder: name the folder the dataset goes to (it is created if missing)")
    release = published_folder_above(output)
    if release:
        raise UsageError(f"{output} lies inside the published release {release}; releases are never modified")
    dataset = dataset_folder_above(output)
    if dataset:
        raise UsageError(f"{output} lies inside the dataset {dataset}: a run there adds files its manifest does not "
                         "list, and the next run into it deletes them; choose an --output outside it")
    linked = linked_run_paths(output)
    if linked:
        raise UsageError(f"{linked[0]} is a link: a run replaces its run files through it, wherever it leads; "
                         "make it a plain folder or file, or choose another --output")
    misplaced = misplaced_run_paths(output)
    if misplaced:
        raise UsageError(f"{misplaced[0]}: publishing would fail there after removing the old run files; move it "
                         "out of the output, or choose another --output")


def check_cache_place(cache: str, output: str) -> None:
    """Before the lock: a --cache at or inside --output, or inside any dataset's folder. Its files lay among the
    dataset's, which its manifest does not list: verify refused the dataset the run published, and the same command
    run again (a kill's retry) with it, exit 2; under OUTPUT/_staging each run removed the cache before its job (a
    killed run resumed from nothing), and under a run folder publishing deleted it."""
    if not cache:
        return
    here, there = canonical_path(cache), canonical_path(output)
    if here == there or here.startswith(there.rstrip("/") + "/"):
        raise UsageError(f"--cache {cache} lies inside --output {output}, where its files would sit among the "
                         "dataset's (which the manifest does not list) or be removed with the run's own; give a cache "
                         "folder outside the output")
    dataset = cache if holds_dataset(cache) else dataset_folder_above(cache)
    if dataset:
        raise UsageError(f"--cache {cache} lies inside the dataset {dataset}, which a run never writes into; give a "
                         "cache folder outside it")


def file_in_path(output: str) -> str | None:
    """`output` itself or the nearest folder above it, where that exists and is no folder (a local path); `review
    apply` checks its --store's folder with it."""
    path = os.path.abspath(output)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else (output if path == os.path.abspath(output) else path)


SNIFFED_FILES = 20


def input_sniffer(opts: PassOptions) -> Callable[[str], str | None]:
    """The launch check of one --input file: YFCC's, or a table's in its format and column mapping."""
    if opts.input_format == "yfcc":
        return sniff
    try:
        layout = table_layout(opts.input_format, opts.columns)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return lambda path: sniff_table(path, layout)


def check_input(pattern: str, sniff_file: Callable[[str], str | None] = sniff) -> None:
    paths = matching(pattern)
    if not paths:
        raise UsageError(f"--input {pattern!r} matches no file")
    unnamed = next((path for path in paths if not is_utf8_text(path)), None)
    if unnamed is not None:  # a name decoded with surrogates: every row's source_ref would fail the job's coder
        raise UsageError(f"--input {unnamed!a}: {unusable_name(unnamed)}")
    other = next((path for path in paths if compressed_another_way(path)), None)
    if other is not None:  # by its name, wherever it lies: the first SNIFFED_FILES only are read at launch
        raise UsageError(f"--input {other}: compressed as {compressed_another_way(other)}, which an input is not read "
                         "as: an input file is plain, .gz or .bz2")
    left_out = link_left_out(pattern)
    if left_out:  # its rows would be missing from the run without a word
        raise UsageError(f"--input {pattern[:200]!r}: {left_out}, and the job would not read it: give a pattern over "
                         "where it leads, or copy its files in")
    for path in paths[:SNIFFED_FILES]:  # a few lines of each of the first files: cheap, even for bz2 dumps
        problem = sniff_file(path)
        if problem and problem != "is empty":  # an empty file adds no row and no doubt
            raise UsageError(f"--input {path} {problem}")


def refusal(stats: dict, opts: PassOptions) -> str | None:
    """Why a finished job must not be published: its rows are not all accounted for (kept +
    rejected != read: a bug, and a dataset that may have lost rows silently), most downloads failed
    for environmental reasons (no network, a blocked crawler), or nothing was kept (unless
    --allow_empty)."""
    if not stats.get("accounted"):
        return (f"{stats.get('input_rows')} rows were read but {stats.get('kept')} kept and {stats.get('rejected')} "
                "rejected: not every row is accounted for (a bug); nothing was published")
    fetched = next((step["in"] for step in stats["funnel"] if step["stage"] == "fetch"), 0)
    fetch_reasons = stats["rejections_by_stage"].get("fetch", {})
    failed = sum(fetch_reasons.get(reason, 0) for reason in ENVIRONMENTAL)
    if fetched and failed / fetched > opts.max_failure_rate:
        named = ", ".join(f"{r}: {fetch_reasons[r]}" for r in ENVIRONMENTAL if fetch_reasons.get(r))
        return (f"{failed} of {fetched} downloads failed for environmental reasons ({named}), above "
                f"--max_failure_rate={opts.max_failure_rate:g}; nothing was published")
    if stats["kept"] == 0 and not opts.allow_empty:
        top = sorted(((n, f"{stage}/{reason}") for stage, reasons in stats["rejections_by_stage"].items()
                      for reason, n in reasons.items()), reverse=True)[:3]
        named = ", ".join(f"{name}: {n}" for n, name in top) or "no input rows"
        hint = ""
        if top and top[0][1] == "fetch/host_not_allowed":  # said only --allow_empty, the wrong fix for this mistake
            hint = (f"; the images' hosts are not in --allowed_hosts (now {opts.allowed_hosts[:120]}): name them "
                    "with --allowed_hosts=HOST,… (HOST:PORT for a port other than its scheme's own: 80 for http, "
                    "443 for https)")
        return (f"kept 0 of {stats['input_rows']} rows ({named}){hint}; nothing was published "
                "(--allow_empty publishes it)")
    return None


def check_inputs_exist(opts: PassOptions, pins: Pins = UNCHECKED) -> None:
    """Every file an option names is there before anything runs (not a failure after the crawl). `pins`: gets the
    version of each --ledger and --previous_index file checked (`file_pins`), which the job's reads compare theirs
    with; one it holds already (verify read it) must still be that version."""
    files = {"--blocklist": split_list(opts.blocklist), "--review_decisions": split_list(opts.review_decisions)}
    globs = {"--previous_index": split_list(opts.previous_index), "--ledger": split_list(opts.ledger),
             "--decontaminate": split_list(opts.decontaminate)}
    for flag, paths in files.items():
        for path in paths:
            if not FileSystems.exists(path):
                raise UsageError(f"{flag} {path}: no such file")
    for flag, patterns in globs.items():
        for pattern in patterns:
            # The listing walks folders without following links: an index's rows behind one compared no new image
            # with its release's images, a ledger's decided its photos again, all without a word (--decontaminate's
            # folders are checked where its sources are read, `decontaminate.expand_eval_source`)
            left_out = link_left_out(pattern) if flag != "--decontaminate" else None
            if left_out:
                raise UsageError(f"{flag} {pattern[:200]!r}: {left_out}, and the job would not read it: give where it "
                                 f"leads as a pattern of its own ({flag}=A,B), or copy its files in")
            if not FileSystems.exists(pattern) and not matching(pattern) and not pins.listed(pattern, []):
                raise UsageError(f"{flag} {pattern}: matches nothing")
    lists = [("--decontaminate", path) for path in globs["--decontaminate"] if is_list_file(path)]
    for flag, path in [(flag, path) for flag, paths in files.items() for path in paths] + lists:
        # A named pipe (`<(curl …)`, a file replaced by one) was opened to be hashed into the run's record, and the
        # run waited for a writer for good; a folder failed the job once built ("the job failed: IsADirectoryError")
        kind = "" if is_remote(path) else size_and_kind(path)[1]
        if kind:
            raise UsageError(f"{flag} {path} is {kind}, not a file")
    for flag, patterns in {"--previous_index": globs["--previous_index"], "--ledger": globs["--ledger"]}.items():
        # with the files a check before read (verify) that are gone since, which are refused as such
        for path in (path for pattern in patterns for path in pins.listed(pattern, matching(pattern)) or [pattern]):
            problem = parquet_problem(path, pins)
            if problem:
                raise UsageError(f"{flag} {path}: {problem}")


def parquet_problem(path: str, pins: Pins = UNCHECKED) -> str | None:
    """Why `path` is no Parquet file Beam's reader can open (None when its footer reads and its row groups hold what
    it states, `record_readers.check_row_groups`): read by the job's reader, a truncated or foreign file failed the
    whole job with ArrowInvalid once it started, and a footer understating a row group's rows hid the others.
    `pins`: as `check_inputs_exist`'s."""
    if pins.holds(path) and not FileSystems.exists(path):
        return f"gone since {pins.by.get(canonical(path), LAUNCH_CHECK)} checked it: run again once its writer is done"
    try:
        # opened without waiting: a named pipe (`<(cmd)`, a file replaced by one) was waited on for a writer for good
        with open_regular_file(path) as handle:
            opened = pin_of(path, handle)
            if pins.holds(path) or pins.covers(path):  # verify read it, or its folder
                pins.confirm(path, handle, LAUNCH_CHECK)
            check_footer(handle)
            parquet = pq.ParquetFile(handle)
            parquet.schema_arrow  # noqa: B018  # reads and parses the footer
            check_row_groups(handle, parquet.metadata)
            if pin_of(path, handle) != opened:
                return "changed as it was checked: run again once its writer is done"
            if not pins.holds(path):
                pins.add(path, handle, LAUNCH_CHECK)
    except ChangedSinceChecked as err:
        return str(err).removeprefix(path).lstrip(": ")
    except (OSError, ValueError, pa.ArrowException) as err:
        return f"not a readable Parquet file ({type(err).__name__}: {str(err)[:200]})"
    return None


# Options naming files the job reads: lists (comma-separated) and single paths or patterns.
_INPUT_LISTS = ("blocklist", "review_decisions", "previous_index", "ledger", "decontaminate")
_INPUT_PATHS = ("input", "model_registry", "fusion", "flickr_credentials")


def check_inputs_outside_output(opts: PassOptions) -> None:
    """Publishing replaces every run file under --output (`io.layout.run_files`: its format folders, stats,
    manifest...): an input file among them would be deleted by the run that read it (a table kept in
    OUTPUT/parquet/, say). Refused at launch, before anything is read or written."""
    named = [(name, value) for name in _INPUT_LISTS for value in split_list(getattr(opts, name) or "")]
    named += [(name, value) for name in _INPUT_PATHS if (value := getattr(opts, name) or "")]
    replaced = {canonical_path(path) for path in run_files(opts.output)}
    for name, pattern in named if replaced else ():
        try:
            paths = matching(pattern) or [pattern]
        except (ValueError, OSError):  # a scheme no filesystem reads (sm://, a secret): no file of the output
            continue
        for path in paths:
            if canonical_path(path) in replaced and is_glob(pattern):  # a glob over the output, not a file put there
                raise UsageError(f"--{name} {pattern[:200]!r} matches {path}, a file a run into --output "
                                 f"{opts.output} writes, which publishing would replace: narrow the pattern or give "
                                 "an --output outside what it matches")
            if canonical_path(path) in replaced:
                raise UsageError(f"--{name} {path} lies where a run into --output {opts.output} writes its own "
                                 "files, and publishing would replace it: move it out of the output first")
    _refuse_globs_over_the_run(opts.output, named)


def _refuse_globs_over_the_run(output: str, named: Sequence[tuple[str, str]]) -> None:
    """A glob that takes in what a run writes into --output while its inputs are listed (its lock, the takedown
    lists and decisions it copies into its staging folder): an input glob is listed when the job runs, so
    --input='data/**' with a first --output=data/out read data/out/_lock.json and the staged copies as rows of input
    (two wrong_column_count rejections, counted among the input rows), a folder holding no dataset yet."""
    for name, pattern in named:
        if not is_glob(pattern) or is_remote(pattern) != is_remote(output):
            continue
        local = not is_remote(pattern)
        spelled = os.path.abspath(pattern) if local else pattern
        folders = {os.path.abspath(output), canonical_path(output)} if local else {canonical_path(output)}
        for folder in folders:
            for path in (FileSystems.join(folder, LOCK),
                         FileSystems.join(folder, STAGING, "RUN", STAGED_LISTS, "list.txt")):
                if glob_matches(spelled, path):
                    raise UsageError(f"--{name} {pattern[:200]!r} takes in the files a run into --output {output} "
                                     f"writes while it reads its inputs ({path[len(folder) + 1:]}): narrow the "
                                     "pattern or give an --output outside what it matches")


# Beam's short runner names, as `create_runner` reads them (apache_beam/runners/runner.py): the last part of each known
# runner's path, lowered.
_BEAM_RUNNERS = {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}


# Where Beam's FnApiRunner is defined, and the package that gives it the shorter path Beam's list of runners names.
_FN_API_RUNNER_PATHS = frozenset({"apache_beam.runners.portability.fn_api_runner.FnApiRunner",
                                  "apache_beam.runners.portability.fn_api_runner.fn_runner.FnApiRunner"})


def runner_path(runner: str | None) -> str:
    """The dotted path of the runner class Beam makes of `runner` (`create_runner`): a short name in any case, "Runner"
    optional (--runner=direct is DirectRunner), read as Beam's own runner's path, or a dotted path as written; "" for
    no runner or a name Beam refuses (it says so when the job is made)."""
    name = str(runner or "")
    lowered = name.lower()
    path = _BEAM_RUNNERS.get(lowered, _BEAM_RUNNERS.get(lowered + "runner", name))
    return path if "." in path else ""


def local_runner(options: PipelineOptions) -> Any:
    """The runner the job is given: for Beam's FnApiRunner (the local default), one that hands its worker processes
    the run's Google Cloud options (`GoogleCloudOptions`: all that Beam's gs:// client reads, the credentials
    --impersonate_service_account makes among them); None for any other runner, which Beam makes of its name. Made by
    name, the FnApiRunner hands its workers no options: with --direct_running_mode=multi_processing each worker process
    set up Beam's filesystems with none, and its gs:// reads and writes went as the user's own default credentials, not
    as --impersonate_service_account (nor with the run's --project and --job_name audit header), where the launch's own
    went as the service account. Those options alone, encoded as Beam's DirectRunner encodes the options it hands the
    FnApiRunner it makes: the others reached no worker before, and a worker is handed them in its environment, whose
    every value has a bound (128 KiB on Linux: a worker that cannot start is waited for by the runner for ever)."""
    if runner_path(options.view_as(StandardOptions).runner) not in _FN_API_RUNNER_PATHS:
        return None  # another runner, a user's own class of that name among them, is Beam's to make
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo, FnApiRunner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    cloud = set(options.view_as(GoogleCloudOptions)._visible_option_list())
    handed = JobServiceHandle.encode_pipeline_options(
        {name: value for name, value in options.get_all_options().items() if name in cloud})
    return FnApiRunner(provision_info=ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(
        retrieval_token="unused-retrieval-token", pipeline_options=handed)))


def runner_type(runner: str | None) -> type | None:
    """The runner class Beam makes of `runner` (`runner_path`, imported as Beam imports it); None for no runner or one
    Beam cannot import (it says so when the job is made)."""
    module, _, name = runner_path(runner).rpartition(".")
    if not module:
        return None
    try:
        found = getattr(importlib.import_module(module), name)
    except Exception:  # any import error of the user's module is Beam's to tell, as it makes the job
        return None
    return found if isinstance(found, type) else None


def _beams_kind(found: type | None, names: Iterable[str]) -> bool:
    """Whether a runner class (`runner_type`) is one of Beam's own runners named in `names`, or a subclass of one: a
    class of a user's own module named like one of Beam's (`mypkg.DirectRunner`) is none, a subclass of Beam's named
    otherwise is."""
    return found is not None and any(kind.__name__ in names and kind.__module__.split(".")[0] == "apache_beam"
                                     for kind in found.__mro__)


def runs_here(runner: str | None) -> bool:
    """Whether the job runs in this process and the ones it starts, as Beam's own local runners do
    (`StandardOptions.LOCAL_RUNNERS`: FnApiRunner, DirectRunner and its variants, PrismRunner, or a subclass of one),
    by Beam's reading of the name: --runner=direct or directrunner was taken for a remote runner by an exact
    comparison, and the launch's GPU check skipped."""
    return _beams_kind(runner_type(runner), StandardOptions.LOCAL_RUNNERS)


def submits_remotely(runner: str | None) -> bool:
    """Whether `Pipeline.run` only submits the job, which then runs elsewhere (Dataflow), where a local runner's runs
    it whole: a stop during a submission waits for the job's handle, to cancel it (`StopSignals.submit`). Beam's test
    runner (TestDataflowRunner) waits for the job inside its submission: a stop held for it would be held to the end."""
    found = runner_type(runner)
    return _beams_kind(found, ("DataflowRunner",)) and not _beams_kind(found, ("TestDataflowRunner",))


def preflight(opts: PassOptions, runner: str, pins: Pins = UNCHECKED) -> None:
    """Fails at launch, not on a worker: unknown detectors, a bad registry, a missing or altered
    model file (sha256), a detector or decision blind to the canary photos (`canary.py`), and — when
    the job runs here — a GPU that was required but is not used.
    On Dataflow the launcher has no GPU; each worker's model load makes the same GPU check. `pins`:
    `check_inputs_exist`'s."""
    from pipeline.build import detectors_of, fusion_of, runtime_of
    from pipeline.canary import check_canaries
    from pipeline.detectors.handler import create_session
    from pipeline.detectors.registry import check_model_outputs, read_model

    check_inputs_exist(opts, pins)

    specs = detectors_of(opts)
    local = runs_here(runner)
    # Each model read (and its sha256 checked) once for every check here: on gs:// each read is a download.
    models = {spec.name: read_model(spec) for spec in specs}
    for spec in specs:
        if opts.require_gpu and local:
            create_session(spec, runtime_of(opts), model_bytes=models[spec.name])  # the provider check
        check_model_outputs(spec, models[spec.name])
    if opts.require_gpu and not specs:
        raise UsageError("--require_gpu with --detectors=none: nothing would run on the GPU")
    if specs and not opts.skip_canary:
        check_canaries(specs, fusion_of(opts, specs), runtime_of(opts), opts.max_side, models)


def run(argv: Sequence[str], overwrite: bool = False, before_publish: Callable[[str], object] | None = None,
        pins: Pins | None = None) -> dict:
    """Runs the job to completion, publishes it into --output and returns its stats (stats.json).

    The output's lock is held throughout (a second run into the same folder is refused at launch);
    the job writes into a staging folder that replaces the output's run files only once the job
    has succeeded (see `io.layout`). `before_publish(staging)` runs once the job is accepted, under the lock, and adds
    to the staged files (a refresh's changelog, datasheet and release name): they are published with the run's, the
    manifest last. Written into the published folder afterwards, a refresh killed in between left a manifest beside
    files it did not list, which verify refused. `pins`: the versions of files a check read before (`file_pins`:
    the previous release verify read, for a refresh), which the job reads or refuses; the launch check adds the
    --ledger and --previous_index files it reads."""
    pins = pins if pins is not None else Pins()
    options = pipeline_options(argv)
    opts = options.view_as(PassOptions)
    # First: --input='data/**' over an --output inside data/ read the old dataset's ATTRIBUTION.csv as the first
    # input file, and was refused as "does not look like YFCC100M metadata", not for what it was.
    check_inputs_outside_output(opts)
    if opts.source == "yfcc" and opts.input:
        check_input(opts.input, input_sniffer(opts))
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    try:
        preflight(opts, options.view_as(StandardOptions).runner, pins)
        if is_published(opts.output):  # before the lock too: a refused run leaves nothing in a release
            check_output(opts.output, overwrite)
        check_output_place(opts.output)
        check_cache_place(opts.cache or "", opts.output)
        # A plain run's record of what made its dataset (a refresh's release records its own): its rerun, finding the
        # dataset published (a run killed while publishing, or after), tells by it that the dataset is this command's.
        made_by = None if opts.release_name else record.run_fingerprint(opts, models_of(opts))
        lock = OutputLock(opts.output, run_id)
        with StopSignals(release=lock.release) as stop, lock:
            try:
                finished = finish_interrupted_publish(opts.output)  # a run that succeeded, killed while publishing
                # Its id is its staging folder's name, read from the output folder (a release's, under a releases' root
                # others may write to): escaped once for each line naming it (its escapes reached the terminal, its
                # line break printed a forged line of its own)
                finished = finished and printable(finished, limit=200)
            except OSError as err:  # the disk refused a move or a deletion: said, not "the job failed"
                raise UsageError(f"cannot finish publishing the run stopped while publishing into {opts.output[:200]} "
                                 f"({' '.join(str(err).split())[:300]}); its files are left as they are: once the "
                                 "disk lets them be moved and removed, run again") from None
            published = is_published(opts.output)
            # The dataset there made by this same command (options, inputs, models): the rerun of a run stopped while
            # publishing, or after (a scheduler retrying), is done. It was refused, exit 2, "already holds a dataset".
            same = (made_by is not None and not overwrite and not published and MANIFEST in holds_run(opts.output)
                    and record.made_by_this_run(opts.output, made_by))
            if finished and not same:
                # --output as typed, escaped as the run's id is (its line break printed a forged line of its own)
                print(f"pass-pipeline: finished publishing run {finished} into {printable(opts.output)} (it was "
                      "stopped while publishing)", file=sys.stderr)
                if published:
                    # The finished run's folder is gone; the emptied `_staging` above it stayed in the release for good.
                    remove_staging(opts.output, keep_planned=True)
                    raise PublishFinished(opts.output, finished)
            try:
                remove_staging(opts.output)  # what killed runs left: no live run can own it, we hold the lock
            except OSError as err:  # the disk refused (a folder of another user): said, not "the job failed"
                raise UsageError(f"cannot remove what an earlier run left in {opts.output[:200]}/{STAGING} "
                                 f"({' '.join(str(err).split())[:300]}); remove it, then run again") from None
            if same:
                return _done_earlier(opts.output, finished)
            check_output(opts.output, overwrite)
            remove_stale_temporaries(opts.cache)
            staging = staging_dir(opts.output, run_id)
            try:
                # This process and any worker processes it starts; the sampler's own CPU under 1% of a core.
                # Beam's `beam-pipeline-temp*` folder (in TMPDIR), which `Pipeline.run` removes only once it returns,
                # is removed however the run ends: stopped while the job was built, or ended by the stop's grace.
                with TreeMemory(cpu_share=0.01) as memory, local_folder(
                        lambda: beam.Pipeline(runner=local_runner(options), options=options),
                        lambda made: made.local_tempdir) as pipeline:
                    build(pipeline, opts, staging, pins)
                    try:
                        with stop.job():
                            try:
                                result = stop.submit(pipeline.run, remote=submits_remotely(
                                    options.view_as(StandardOptions).runner))
                                stop.wait(result)
                            finally:
                                progress.job_ended()
                    except ValueError as err:
                        if isinstance(err, RegistryError):  # a model file a worker found altered: the user's
                            raise
                        raise JobFailed(f"{type(err).__name__}: {err}") from err
                counted = {**(ledger_rows_ignored(result) if opts.ledger else {}),
                           **(previous_index_rows_ignored(result) if opts.previous_index else {}),
                           **(eval_images_unreadable(result) if opts.decontaminate else {})}
                stats = report.add_to_stats(staging, **counted, api_calls=api_calls(result),
                                            steps=progress.timings(result), peak_rss_mb=peak_rss_mb(),
                                            peak_memory_mb=round(memory.peak_mib, 1) if memory.available else None)
                refused = refusal(stats, opts)
                if refused:
                    raise RunRefused(refused)
                if made_by is not None:  # sealed over the files as they are published
                    report.update_manifest(staging, (), **{record.RUN_FINGERPRINT: record.seal_run(
                        made_by, report.read_manifest(staging)["files"])})
                if before_publish is not None:
                    before_publish(staging)
                publish(staging, opts.output)
            finally:
                try:
                    remove_staging(opts.output, keep_planned=True)
                except OSError as err:  # published or not, what ended the run is told, not this; the next run retries
                    print(f"pass-pipeline: could not remove {printable(opts.output, limit=200)}/{STAGING} "
                          f"({' '.join(str(err).split())[:300]}); the next run into the folder removes it",
                          file=sys.stderr)
            return stats
    except (OutputLocked, OutputNotWritable) as err:
        raise UsageError(str(err)) from None


def _done_earlier(output: str, finished: str | None) -> dict:
    """The stats of the dataset in `output`, which this same command made (`finished`: the run whose publish this one
    finished, or None where it had published), once verify passes it; said in one line. A file edited since (stats.json
    too, which the record's seal leaves out) is refused, exit 2, naming it: told done, the dataset was not whole."""
    problems = list(verify(output))
    if problems:
        raise UsageError(f"{f'finished publishing run {finished} into {output}; ' if finished else ''}{output} holds "
                         f"the dataset of this same command, but it does not match its manifest ({problems[0].path}: "
                         f"{problems[0].message}); nothing else was done: run `pass-pipeline verify {output}`")
    # --output as typed, escaped as the run's id is (`finished`): its escapes drove the terminal, its line break
    # printed a forged line of its own. The refusal above is escaped whole by the command's error line.
    shown = printable(output)
    done = (f"finished publishing run {finished} into {shown}, the earlier run of this same command (it was stopped "
            "while publishing)" if finished else
            f"{shown} already holds the dataset of this same command (its earlier run published it)")
    print(f"pass-pipeline: {done}; nothing else to do (`pass-pipeline verify {shown}` checks it)", file=sys.stderr)
    return report.read_stats(output)


def _stats_shape_problem(stats: object) -> str:
    """What keeps `summary` from reading `stats` (stats.json) as a run writes it; '' when nothing does. Its values are
    shown as they are (escaped): only the shapes it reads them through are checked."""
    by_stage = stats.get("rejections_by_stage") if isinstance(stats, dict) else None
    if not (isinstance(stats, dict) and isinstance(by_stage, dict)
            and all(isinstance(reasons, dict) for reasons in by_stage.values())
            and all(key in stats for key in ("kept", "input_rows", "accounted"))):
        return "not the counts a run writes (input_rows, kept, accounted, rejections_by_stage by stage and reason)"
    return ""


def _files_shape_problem(manifest: object) -> str:
    """What keeps `summary` from reading `manifest`'s files (each a path, the review page's with its counts) as a run
    lists them; '' when nothing does."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (isinstance(files, list) and all(isinstance(entry, dict) and isinstance(entry.get("path"), str)
                                            for entry in files)):
        return "not the files a run lists (each an object with its path)"
    sheet: dict[str, Any] = next((entry for entry in files if entry.get("format") == "review_sheet"), {})
    if not all(isinstance(sheet.get(key), int | None) for key in ("held", "records")):
        return "its review page's held and records are not counts"
    return ""


def api_calls(result: PipelineResult) -> dict[str, int]:
    """Flickr API calls by method, summed over every worker (Beam counters of FlickrClient)."""
    counters = result.metrics().query(MetricsFilter().with_namespace(API_METRICS))["counters"]
    calls: dict[str, int] = {}
    for counter in counters:
        calls[counter.key.metric.name] = calls.get(counter.key.metric.name, 0) + int(counter.committed or 0)
    return dict(sorted(calls.items()))


def _counted(result: PipelineResult, namespace: str, name: str) -> int:
    counters = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))["counters"]
    return sum(int(counter.committed or 0) for counter in counters)


def ledger_rows_ignored(result: PipelineResult) -> dict[str, int]:
    """{"ledger_rows_ignored": n}: the previous ledger's rows no run writes (stages/ledger.py); they decided nothing."""
    return {"ledger_rows_ignored": _counted(result, LEDGER_METRICS, IGNORED_ROWS)}


def previous_index_rows_ignored(result: PipelineResult) -> dict[str, int]:
    """{"previous_index_rows_ignored": n}: --previous_index rows no run writes (stages/near_dedup.py); no new image
    was compared with them."""
    return {"previous_index_rows_ignored": _counted(result, PREVIOUS_INDEX_METRICS, IGNORED_PREVIOUS_ROWS)}


def eval_images_unreadable(result: PipelineResult) -> dict[str, int]:
    """{"eval_images_unreadable": n}: --decontaminate's evaluation images no hash could be taken of, so no dataset
    image was compared with them (stages/decontaminate.py): a run that says nothing looks fully decontaminated."""
    return {"eval_images_unreadable": _counted(result, DECONTAMINATE, UNREADABLE_EVAL_IMAGES)}


def summary(output: str, stats: dict) -> str:
    """What a finished run kept and where its files are: only the formats it wrote. Each value from the dataset (its
    stats.json's reasons and counts, its review page's path: a dataset on disk, this same command's found done, a
    release whose publish was finished, one resealed) and the folder as typed are escaped (printable): printed as
    they were, their escapes drove the terminal and a line break in one printed a forged line of its own. A stats.json
    or a manifest of a shape it cannot read through (a release whose publish a refresh's rerun finished: nothing
    checked them on that path) is a UsageError naming the file."""
    def shown(value: object) -> str:
        return printable(str(value))

    def at(*names: str) -> str:
        return shown(FileSystems.join(output, *names))

    manifest = report.read_manifest(output)
    # A release whose publish a refresh's rerun finished is summed up from files nothing checked on that path (a
    # staging folder under a releases' root others may write to): one of another shape ended in "the job failed"
    # (a TypeError, a KeyError), exit 1. It is refused in one line, exit 2, the dataset left for verify to judge.
    for name, problem in (("stats.json", _stats_shape_problem(stats)),
                          ("manifest.json", _files_shape_problem(manifest))):
        if problem:
            raise UsageError(f"{at(name)}: {problem}, so the dataset is not summed up; `pass-pipeline verify "
                             f"{shown(output)}` checks it")
    reasons = ", ".join(f"{shown(stage)}/{shown(reason)}: {shown(n)}"
                        for stage, by_reason in stats["rejections_by_stage"].items() for reason, n in by_reason.items())
    written = sorted({entry["path"].split("/", 1)[0] for entry in manifest["files"] if "/" in entry["path"]})
    formats = [at(name) for name in FORMAT_FOLDERS if name in written]
    # The borderline band waits for a reviewer: the summary named every other file, never the page holding it.
    sheet: dict[str, Any] = next((entry for entry in manifest["files"] if entry.get("format") == "review_sheet"), {})
    held, on_page = int(sheet.get("held") or 0), int(sheet.get("records") or 0)
    review = (f"  review:      {at(sheet['path'])}: {held} photos held for review"
              f"{f' ({on_page} most suspicious on the page)' if on_page < held else ''}; decide them there, then "
              "`pass-pipeline review apply decisions.csv --store STORE` and run again with --review_decisions STORE\n"
              if held else "")
    return (
        f"kept {shown(stats['kept'])} of {shown(stats['input_rows'])} input rows "
        f"({'all accounted for' if stats['accounted'] else 'NOT ALL ACCOUNTED FOR'})\n"
        f"  rejected: {reasons or 'none'}\n"
        + (f"  previous ledger: {shown(stats['ledger_rows_ignored'])} rows no run writes were ignored (their photos "
           "decided again)\n" if stats.get("ledger_rows_ignored") else "")
        + (f"  previous index: {shown(stats['previous_index_rows_ignored'])} rows no run writes were ignored (no new "
           "image was compared with them)\n" if stats.get("previous_index_rows_ignored") else "")
        + (f"  decontaminate: {shown(stats['eval_images_unreadable'])} evaluation images could not be read, so nothing "
           "was compared with them (see the log)\n" if stats.get("eval_images_unreadable") else "") +
        f"  dataset:     {', '.join(formats) or 'no images'}\n" + review +
        f"  rejections:  {at('rejections')}\n"
        f"  stats:       {at('stats.json')}   manifest: {at('manifest.json')}\n"
        f"  attribution: {at('ATTRIBUTION.csv')}   dataset card: {at('README.md')}"
    )


