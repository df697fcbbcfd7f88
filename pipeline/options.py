"""Every flag of `pass-pipeline run`, typed, documented, grouped and given one role, as one Beam
`PipelineOptions` view.

Beam's own options (runner, workers, Dataflow settings) pass through untouched, so the job
is configured the same way on the local runner and on Dataflow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.cc_by import CC_BY_LICENSE_IDS
from pipeline.usage import split_list as split_list  # (the photo_sets scripts read it there, without Beam)

DEFAULT_ALLOWED_HOSTS = "live.staticflickr.com,farm*.staticflickr.com,farm*.static.flickr.com"
FORMATS = ("webdataset", "parquet", "tfrecord")
# The readers: sources/yfcc.py, sources/table.py (its delimited.py, parquet_rows.py), their lines input_files.py
INPUT_FORMATS = ("yfcc", "csv", "tsv", "tsv_plain", "parquet", "jsonl")
PROJECT_URL = "https://github.com/pass-pipeline/pass-pipeline"
# --near_dup_distance's default; also the radius of --decontaminate and of pHash takedowns without a distance when
# the near-duplicate stage is off (-1): turning that stage off must not make them match identical pHashes alone.
DEFAULT_NEAR_DUP_DISTANCE = 4


def flag(value: str) -> bool:
    """`--x`, `--x=true` and `--x=false` all work (a scheduler's or a script's arguments often give each a value)."""
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


# The spellings of a number a flag takes: ASCII digits, a sign, and for a decimal a point and an exponent. Python's
# int() and float() also take '1_000', ' 5' and other scripts' digits, and float() 'inf' and 'nan', which a launch
# written by hand rarely means (and the Flex Template this project once shipped refused). Ranges are validate()'s.
INTEGER_SPELLING = r"[+-]?[0-9]+"
DECIMAL_SPELLING = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"


def _spelled(text: str, spelling: str, what: str) -> str:
    if not re.fullmatch(spelling, text):  # fullmatch: '5\n' is no number either
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is no {what} with an optional sign, no '_' and no spaces")
    return text


def _signed_as_meant(text: str, value: float) -> None:
    """A minus sign makes a number below 0: '-0' (or '-1e-999', which float() makes -0.0) is refused: a minus sign
    written before a number that is not below 0 is a mistake, not a way to spell it."""
    if text.startswith("-") and not value < 0:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: a minus sign before a number that is not below 0")


def integer(text: str) -> int:
    """A whole-number flag's value, spelled as `INTEGER_SPELLING` says."""
    try:
        value = int(_spelled(text, INTEGER_SPELLING, "whole number: ASCII digits"))
    except ValueError:  # over Python's 4,300 digits
        raise argparse.ArgumentTypeError(f"{text[:40]!r}…: too many digits") from None
    _signed_as_meant(text, value)
    return value


def decimal(text: str) -> float:
    """A number flag's value, spelled as `DECIMAL_SPELLING` says; too large a one is inf,
    which validate() refuses by name."""
    value = float(_spelled(text, DECIMAL_SPELLING, "number: ASCII digits, a point, an exponent (2.5e3)"))
    _signed_as_meant(text, value)
    return value


class Role(enum.Enum):
    """What an option is to a release. Each option has exactly one; every list of options that the
    job, the manifest, the refresh or the work cache needs is derived from them."""

    OPERATIONAL = "operational"  # how the job runs (timeouts, threads, devices, credentials): not recorded
    RECORDED = "recorded"  # recorded in the manifest (inputs, layout, safety limits); not inherited
    INHERITED = "inherited"  # recorded, and a refresh carries it over unless given again
    SHAPES_BYTES = "shapes_bytes"  # inherited, and it changes the stored image bytes (the work cache key)
    SHAPES_DETECTION = "shapes_detection"  # inherited, and it changes detection (a refresh re-detects)
    INTERNAL = "internal"  # set by `refresh` itself: recorded, kept out of --help


RECORDED_ROLES = frozenset(Role) - {Role.OPERATIONAL}
INHERITED_ROLES = frozenset({Role.INHERITED, Role.SHAPES_BYTES, Role.SHAPES_DETECTION})
GROUPS = {
    "source": "source and output",
    "fetch": "fetch (per worker process)",
    "image": "decode and normalise",
    "dedup": "duplicates and lists",
    "detect": "detection and review",
    "selection": "selection",
}


@dataclass(frozen=True)
class Declared:
    name: str
    group: str
    role: Role
    is_input: bool  # also listed under the manifest's "inputs"
    argparse_kwargs: dict[str, Any] = field(hash=False)

    @property
    def default(self) -> Any:
        return self.argparse_kwargs.get("default")


def _declarations() -> list[Declared]:
    """Every flag of `run`, in --help order. Sizes are pixels, times seconds, unless named otherwise."""
    declared: list[Declared] = []
    current = [""]

    def section(name: str) -> None:
        current[0] = name

    def add(flag: str, role: Role, is_input: bool = False, **argparse_kwargs: Any) -> None:
        declared.append(Declared(flag.removeprefix("--"), current[0], role, is_input, argparse_kwargs))

    section("source")
    add("--source", Role.INHERITED, is_input=True, default="yfcc", choices=("yfcc", "flickr"),
        help="yfcc: metadata files given by --input (YFCC100M dumps or a table, see --input_format); "
             "flickr: the live Flickr API (CC BY search by upload date).")
    add("--input", Role.RECORDED, is_input=True, default=None,
        help="Metadata file(s) in --input_format: a path or glob; text formats plain, .gz or .bz2.")
    add("--input_format", Role.INHERITED, is_input=True, default="yfcc", choices=INPUT_FORMATS,
        help="yfcc: YFCC100M dumps (23 or 25 tab-separated columns, no header); csv, tsv (with a header row, "
             "quoted values may hold line breaks), tsv_plain (tab-separated, no quoting: one line a row, a quote "
             "is a character, as database exports write), parquet, jsonl (one JSON object per line): a generic "
             "table read through --columns.")
    add("--columns", Role.INHERITED, is_input=True, default="",
        help="Generic tables: FIELD=COLUMN,... naming the table's column for each of our fields: id and url "
             "(required), license (required: a license URL or name), owner, title, page_url; a field not "
             "named is read from the column of its own name (e.g. url=photo_url,id=photo_id,owner=author).")
    add("--min_upload_date", Role.RECORDED, is_input=True, default=None,
        help="--source=flickr: first upload day (YYYY-MM-DD, UTC) or epoch.")
    add("--max_upload_date", Role.RECORDED, is_input=True, default=None,
        help="--source=flickr: last upload day (YYYY-MM-DD, UTC) or epoch.")
    add("--flickr_licenses", Role.INHERITED, default="4,11",
        help="--source=flickr: license ids searched (4 = CC BY 2.0, 11 = 4.0).")
    add("--flickr_rest_url", Role.OPERATIONAL, default=None,
        help="Flickr REST endpoint (the fixture server in tests, or a proxy); a run asking the API records it, its "
             "user info and query masked, with what made the dataset.")
    add("--verify_license", Role.INHERITED, nargs="?", const=True, default=False, type=flag,
        help="Re-check every photo's existence and license with the Flickr API before fetching.")
    add("--flickr_calls_per_second", Role.OPERATIONAL, type=decimal, default=1.0,
        help="API calls per second per key per worker process (Flickr allows 3,600 calls per hour per key; "
             "a job spends this x keys x worker processes, so divide by the workers); 0 = unpaced, for a local "
             "server only; otherwise at least 0.000278 (one an hour).")
    add("--flickr_credentials", Role.OPERATIONAL, default=None,
        help='JSON document {"key", "secret"} or {"keys": [{"key", "secret"}, ...]}: a Secret Manager secret '
             "(sm://projects/P/secrets/S[/versions/V]) or a file (local or gs://); default: FLICKR_API_KEY / "
             "FLICKR_API_SECRET (several keys comma-separated). Calls spread over the keys.")
    add("--flickr_search_depth", Role.OPERATIONAL, type=integer, default=4000,
        help="Results one Flickr search returns at most (deeper pages repeat); upload windows are split "
             "until each holds at most this many. Lower it if Flickr lowers its cap.")
    add("--flickr_originals", Role.SHAPES_BYTES, nargs="?", const=True, default=False, type=flag,
        help="Download the original upload (Flickr's _o URL with its original secret and format) instead of "
             "the smallest resized copy that covers --max_side. Originals are large: use only when needed.")
    add("--output", Role.OPERATIONAL, default=None,
        help="Directory the dataset, rejections, stats and attribution go to.")
    add("--cache", Role.OPERATIONAL, default="",
        help="Work cache folder (local or gs://) of downloaded and normalised images, outside --output: a run "
             "started again after being killed takes what it already had from here instead of downloading it again.")
    add("--progress_seconds", Role.OPERATIONAL, type=decimal, default=5.0,
        help="Seconds between progress lines, at least 0.1 (per worker process; also while a long step lets "
             "nothing through).")
    add("--carry_over", Role.INTERNAL, is_input=True, default="",
        help="A finished release whose images are carried into this run without refetching (after license "
             "re-verification and the blocklist); `pass-pipeline refresh` sets it.")
    add("--redetect", Role.RECORDED, nargs="?", const=True, default=False, type=flag,
        help="Run detection on the carried-over images too (a refresh turns it on by itself when the "
             "detectors, their files or thresholds differ from the previous release's).")
    add("--release_name", Role.INTERNAL, default="",
        help="Name of the release this run writes (e.g. 2026-11); recorded as each new image's first release.")
    add("--formats", Role.INHERITED, default=",".join(FORMATS), help=f"Comma-separated subset of {', '.join(FORMATS)}.")
    add("--shards", Role.RECORDED, type=integer, default=0,
        help="Number of dataset shards; 0 picks ceil(kept / images_per_shard), at least 8 (fewer only when fewer "
             "images are kept).")
    add("--images_per_shard", Role.RECORDED, type=integer, default=5000, help="Target shard size when --shards=0.")
    section("fetch")
    add("--allowed_hosts", Role.RECORDED, default=DEFAULT_ALLOWED_HOSTS,
        help="Hosts images may be downloaded from (and redirected to); '*' wildcards, optional :port "
             "(without one, only the scheme's own port: 80 or 443). A host name must resolve to public addresses "
             "only (address_not_public); to download from a private address, list the address itself.")
    add("--contact", Role.OPERATIONAL, default=PROJECT_URL,
        help="Contact URL sent in the User-Agent so site owners can reach us.")
    add("--connect_timeout", Role.OPERATIONAL, type=decimal, default=10.0, help="Seconds to open a connection.")
    add("--read_timeout", Role.OPERATIONAL, type=decimal, default=30.0,
        help="Seconds without a byte before a read gives up.")
    add("--fetch_deadline", Role.OPERATIONAL, type=decimal, default=120.0,
        help="Seconds one photo's download may take in all: waiting for its turn at the host, retries and the "
             "fallback to the row's own URL included.")
    add("--max_bytes", Role.SHAPES_BYTES, type=integer, default=20 * 1024 * 1024,
        help="Largest response body accepted.")
    add("--max_retries", Role.OPERATIONAL, type=integer, default=3,
        help="Retries after 429, 5xx and connection errors.")
    add("--backoff_base", Role.OPERATIONAL, type=decimal, default=1.0, help="First retry delay; doubles on each retry.")
    add("--max_backoff", Role.OPERATIONAL, type=decimal, default=60.0,
        help="Longest single wait, Retry-After included.")
    add("--per_host_concurrency", Role.OPERATIONAL, type=integer, default=16,
        help="Concurrent requests per host per worker process.")
    add("--per_host_rps", Role.OPERATIONAL, type=decimal, default=50.0,
        help="Requests per second per host per worker process; 0 = no limit, otherwise at least 0.000278 (one an "
             "hour).")
    add("--max_failure_rate", Role.OPERATIONAL, type=decimal, default=0.5,
        help="A run whose downloads fail for environmental reasons (fetch/connection_error, timeout, "
             "deadline_exceeded, rate_limited and server_error: 429/5xx, address_not_public: a host name resolving "
             "to a non-public address, protocol_error: an answer that is no HTTP or a TLS handshake failing, as "
             "every one does behind a TLS-intercepting proxy, truncated_body: a body cut short) more often than "
             "this is refused: nothing is published, the exit status is 4 (no network, a blocked crawler, a "
             "resolver set up wrong, a proxy cutting transfers short); 1 = never refuse.")
    add("--fetch_threads", Role.OPERATIONAL, type=integer, default=32, help="Download threads per worker process.")
    section("image")
    add("--max_side", Role.SHAPES_BYTES, type=integer, default=512,
        help="Longer side of stored images (PASS shipped 512).")
    add("--min_side", Role.SHAPES_BYTES, type=integer, default=64,
        help="Images whose shorter side is below this are rejected.")
    add("--max_pixels", Role.SHAPES_BYTES, type=integer, default=64_000_000,
        help="Images with more pixels are rejected before decoding.")
    add("--decode_pixel_budget", Role.OPERATIONAL, type=integer, default=128_000_000,
        help="Pixels one worker process decodes at once, all its threads together (a JPEG decoded at reduced "
             "scale counts its reduced pixels; a pixel counts as the 16 bytes a PNG with alpha takes, a WebP "
             "with alpha's as 1.5 pixels); an image over it decodes alone. The default, two PNGs with alpha at "
             "--max_pixels, is ~1.9 GiB.")
    add("--min_stddev", Role.SHAPES_BYTES, type=decimal, default=3.0,
        help="Images whose pixel standard deviation (0-255) is below this are rejected as blank.")
    add("--jpeg_quality", Role.SHAPES_BYTES, type=integer, default=90, help="Quality of the re-encoded JPEGs.")
    add("--draft_supersample", Role.SHAPES_BYTES, type=integer, default=2,
        help="JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps at least this many times "
             "the stored size on each side, before the resize; 1 saves ~1.2 ms of CPU per 1024 px image at about "
             "the loss of JPEG re-encoding but let borderline people through (docs/normalisation.md); 0 decodes "
             "every JPEG at full size.")
    add("--resize_reducing_gap", Role.SHAPES_BYTES, type=decimal, default=1.0,
        help="The resize first shrinks by an integer factor with a box filter while at least this factor is "
             "left for the Lanczos step (Pillow's reducing_gap): at 1.0 a 2x reduction is a 2x2 average, 3.4x "
             "faster and closer to a full Lanczos than JPEG q90 itself (docs/normalisation.md); 0 = Lanczos only.")
    section("dedup")
    add("--near_dup_distance", Role.INHERITED, type=integer, default=DEFAULT_NEAR_DUP_DISTANCE,
        help="pHash Hamming distance at or below which two images are near duplicates (0-16); -1 = off. "
             "4 catches re-encodes, resizes and brightness changes of the bundled photos "
             "(benchmarks/near_dup_radius.py).")
    add("--near_dup_key_blocks", Role.INHERITED, type=integer, default=2,
        help="Blocks per candidate key: the hash is cut into distance + this many blocks (see near_dedup.py).")
    add("--near_dup_dhash_distance", Role.INHERITED, type=integer, default=-1,
        help="Also require dHash distance at most this for a near duplicate (-1 = off). Measured "
             "(benchmarks/near_dup_radius.py): at 10 it removes about a third of pHash false positives "
             "on low-detail images and no true copy of the bundled photos.")
    add("--near_dup_bucket_cap", Role.OPERATIONAL, type=integer, default=64,
        help="Buckets larger than this (and than 2,048 hashes, one vectorised pass) are split further "
             "instead of compared pairwise.")
    add("--previous_index", Role.RECORDED, is_input=True, default="",
        help="Comma-separated globs of an earlier release's near_dup_index/*.parquet: new images are compared "
             "against it (and among themselves) and never displace its images; the new index includes it.")
    add("--ledger", Role.RECORDED, is_input=True, default="",
        help="Comma-separated globs of a previous release's ledger/*.parquet: rows whose photo id it decided for "
             "good are rejected as already_decided instead of being fetched again (a refresh sets it).")
    add("--blocklist", Role.INHERITED, is_input=True, default="",
        help="Comma-separated blocklist files (photo_id, owner, url, sha256, phash entries; see blocklist.py).")
    add("--decontaminate", Role.INHERITED, is_input=True, default="",
        help="Comma-separated folders, globs or list files of evaluation images: dataset images within "
             "--near_dup_distance of one (4 when that is -1) are rejected.")
    section("detect")
    add("--detectors", Role.SHAPES_DETECTION, default="default",
        help="Comma-separated detector names from the model registry; 'default' = the registry's defaults "
             "(CenterFace faces, NanoDet COCO and MediaPipe Open Images persons, open-NSFW); 'none' turns "
             "detection off.")
    add("--model_registry", Role.SHAPES_DETECTION, is_input=True, default="",
        help="JSON file (local or gs://) of extra or overriding detectors, same shape as models/registry.json.")
    add("--fusion", Role.SHAPES_DETECTION, default="default",
        help="How the human classes decide: 'default' = the registry's fusion model (--model_registry's "
             "\"fusion\" entry where it has one, else models/fusion.json: one "
             "calibrated score over the detectors' scores, fitted on labelled photographs) when every "
             "detector it reads is selected, else per-detector thresholds; 'none' = per-detector thresholds; "
             "or the path of a fusion model JSON (python -m pipeline.photo_sets.fit_fusion writes one).")
    add("--detect_thresholds", Role.SHAPES_DETECTION, default="",
        help="Override rejection thresholds: DETECTOR.CLASS=SCORE,... (e.g. centerface.face=0.6). Classes "
             "the fusion model reads are decided by it: use --fusion=none to decide them by threshold.")
    add("--review_band", Role.SHAPES_DETECTION, default="",
        help="Override where the borderline band starts: DETECTOR.CLASS=SCORE,...; images scoring from there "
             "up to the threshold go to review/. Equal to the threshold: no band.")
    add("--detect_device", Role.OPERATIONAL, default="auto", choices=("auto", "cpu", "cuda"),
        help="auto: CUDA when onnxruntime-gpu and a GPU are present, else CPU; cuda: CUDA or fail.")
    add("--skip_canary", Role.INHERITED, nargs="?", const=True, default=False, type=flag,
        help="Run even if a selected detector, or the decision, does not see the people in the canary "
             "photos the package ships (checked at launch: a blind detector would publish people).")
    add("--require_gpu", Role.OPERATIONAL, nargs="?", const=True, default=False, type=flag,
        help="Fail the job at start unless every detector really runs on CUDA (onnxruntime otherwise "
             "falls back to the CPU silently).")
    add("--detect_batch_size", Role.OPERATIONAL, type=integer, default=16,
        help="Most photos per inference batch (on a GPU up to 64 views are one session call: raise it there).")
    add("--detect_min_batch_size", Role.OPERATIONAL, type=integer, default=1,
        help="Fewest photos per inference batch (Beam's BatchElements grows batches between the two).")
    add("--detect_tile_min_side", Role.SHAPES_DETECTION, type=integer, default=400,
        help="Images whose longer side is at least this are also checked as 2x2 overlapping tiles by "
             "detectors that allow tiling, so small people in the background are found; 0 = no tiles.")
    add("--detect_share_model_across_processes", Role.OPERATIONAL, nargs="?", const=True, default=False, type=flag,
        help="Load each detector once per worker machine and share it between the SDK processes (keeps "
             "one copy on the GPU when Dataflow runs one SDK process per vCPU).")
    add("--detect_every_view", Role.RECORDED, nargs="?", const=True, default=False, type=flag,
        help="Score every photo with every detector on every view. By default a photo already rejected as "
             "human by the cheaper detectors skips the rest (same decisions, fewer scores in its rejection).")
    add("--detect_threads", Role.OPERATIONAL, type=integer, default=0,
        help="onnxruntime intra-op threads per session; 0 = onnxruntime's default (all cores).")
    add("--review_decisions", Role.INHERITED, is_input=True, default="",
        help="Reviewer decisions CSV (photo_id, decision, note, sha256; see `pass-pipeline review apply`): "
             "accept keeps a borderline photo while its image is the one reviewed (sha256), reject_human / "
             "reject_other reject it with the note.")
    section("selection")
    add("--allow_empty", Role.OPERATIONAL, nargs="?", const=True, default=False, type=flag,
        help="Publish a run that keeps no image (otherwise it is refused: exit status 4, nothing published).")
    add("--per_owner_cap", Role.INHERITED, type=integer, default=80,
        help="Most images kept per Flickr account (PASS used 80); 0 = no cap.")
    return declared


DECLARED = tuple(_declarations())
OPTIONS = {option.name: option for option in DECLARED}
INPUTS = tuple(o.name for o in DECLARED if o.is_input)
RECORDED = tuple(o.name for o in DECLARED if o.role in RECORDED_ROLES)
INHERITED = tuple(o.name for o in DECLARED if o.role in INHERITED_ROLES)
SHAPES_BYTES = tuple(o.name for o in DECLARED if o.role is Role.SHAPES_BYTES)
SHAPES_DETECTION = tuple(o.name for o in DECLARED if o.role is Role.SHAPES_DETECTION)


def add_arguments(parser: argparse.ArgumentParser, show_defaults: bool = False) -> None:
    """Adds every option to `parser` in sections; internal ones stay out of the help text."""
    sections: dict[str, Any] = {}
    for option in DECLARED:
        if option.group not in sections:
            sections[option.group] = parser.add_argument_group(GROUPS[option.group])
        kwargs = dict(option.argparse_kwargs)
        if option.role is Role.INTERNAL:
            kwargs["help"] = argparse.SUPPRESS
        elif show_defaults and not (option.default is None or option.default is False or option.default == ""):
            # by identity: `0 in (None, "", False)` is true, which hid every default of 0 (--shards, --per_owner_cap)
            kwargs["help"] = f"{kwargs.get('help', '')} (default: {option.default})"
        sections[option.group].add_argument(f"--{option.name}", **kwargs)


class PassOptions(PipelineOptions):
    """Options of the dataset build, as one Beam options view (see `DECLARED`)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)


def recorded(opts: PassOptions) -> dict[str, Any]:
    return {name: getattr(opts, name) for name in RECORDED}


def shaping(opts: PassOptions) -> dict[str, Any]:
    """The options that shape the stored bytes, by name (the work cache keys on them)."""
    return {name: getattr(opts, name) for name in SHAPES_BYTES}


REDUCING_GAP_RANGE = "--resize_reducing_gap must be 0 (off) or within 1..8"
DRAFT_SUPERSAMPLE_RANGE = "--draft_supersample must be within 0..8"


# Integer options by the sign validate() allows.
POSITIVE_INTS = ("max_side", "min_side", "max_pixels", "decode_pixel_budget", "max_bytes", "per_host_concurrency",
                 "fetch_threads", "images_per_shard")
AT_LEAST_ONE = (*POSITIVE_INTS, "detect_batch_size", "detect_min_batch_size", "flickr_search_depth",
                "near_dup_key_blocks", "near_dup_bucket_cap", "jpeg_quality")
MINUS_ONE_OR_MORE = ("near_dup_distance", "near_dup_dhash_distance")  # -1: off


def valid_draft_supersample(value: int) -> bool:
    return 0 <= value <= 8


MIN_PROGRESS_SECONDS = 0.1
MIN_RATE = 1 / 3600  # --per_host_rps and --flickr_calls_per_second above 0: one an hour at least


def valid_reducing_gap(value: float) -> bool:
    """0 (off) or 1..8: Pillow refuses a gap below 1; nan and inf fail both comparisons."""
    return value == 0 or 1 <= value <= 8


def _is_epoch(value: str) -> bool:
    return value.strip().isascii() and value.strip().isdigit()  # str.isdigit() alone passes '²', which int() refuses


def parse_date(value: str) -> int:
    """'2024-01-31' (UTC midnight) or epoch seconds -> epoch seconds; ValueError for anything else, epoch seconds
    past the year 9999 too (no date can show them: the datasheet, written after the whole job, failed on one)."""
    if _is_epoch(value):
        try:
            dt.datetime.fromtimestamp(int(value), tz=dt.UTC)  # past 9999-12-31: ValueError, OverflowError or OSError
        except (OverflowError, OSError):
            raise ValueError(f"{value.strip()[:40]} seconds is past the year 9999") from None
        return int(value)
    # strptime takes "2024-1-1" and other scripts' digits ("２０２４-01-01"), which the manifest and the datasheet then
    # showed as typed, and which a refresh's record held as another command than the same day written plainly
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        raise ValueError(f"{value.strip()[:40]!r} is no date written YYYY-MM-DD")
    day = dt.datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return int(day.timestamp())


def upload_window(min_date: str, max_date: str) -> tuple[int, int]:
    """--min_upload_date and --max_upload_date -> first and last epoch second searched (a day given as a date is
    inclusive); ValueError naming the flag for a value that is no date, or a window that is empty."""
    bounds = []
    for flag, value in (("--min_upload_date", min_date), ("--max_upload_date", max_date)):
        try:
            bounds.append(parse_date(value))
        except ValueError:
            raise ValueError(f"{flag} {value[:40]!r} is no date (YYYY-MM-DD) or epoch seconds") from None
    low, high = bounds[0], bounds[1] + (0 if _is_epoch(max_date) else 86399)
    if low > high:
        raise ValueError(f"--min_upload_date {min_date.strip()} is after --max_upload_date {max_date.strip()}: "
                         "the upload window is empty")
    return low, high


def _unfinished(high: int, max_date: str, now: float | None = None) -> list[str]:
    """A window that ends after the launch takes uploads not made yet: the same command (a rerun, a refresh retried
    the next day, which its record then took for the same refresh) gave another dataset later."""
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    if high <= now:
        return []
    yesterday = (dt.datetime.fromtimestamp(now, dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    return [f"--max_upload_date {max_date.strip()[:40]} ends after now: uploads not made yet would make the same "
            f"command give another dataset later; the last whole day is {yesterday} (UTC)"]


GLOB_CHARACTERS = ("*", "?", "[", "]")
_CONTACT = re.compile(r"https?://[!-~]{1,300}")


def validate(opts: PassOptions) -> list[str]:
    """Problems with the options a user gave, as messages; empty when the options are usable."""
    # argparse takes a value of '--' for the end of the flags and leaves the option an empty list, never typed:
    # --near_dup_dhash_distance=-- failed the job with a TypeError where every other wrong number is one line
    nothing = [option.name for option in DECLARED if isinstance(getattr(opts, option.name, None), list)]
    if nothing:
        return [f"--{name} was given '--', which reads as the end of the flags, not as a value" for name in nothing]
    problems = []
    if opts.source == "yfcc" and not opts.input and not opts.carry_over:
        problems.append("--input is required (metadata files; or --source=flickr to read the Flickr API)")
    if opts.source == "flickr" and not (opts.min_upload_date and opts.max_upload_date):
        problems.append("--source=flickr needs --min_upload_date and --max_upload_date")
    elif opts.source == "flickr":
        try:
            problems.extend(_unfinished(upload_window(opts.min_upload_date, opts.max_upload_date)[1],
                                        opts.max_upload_date))
        except ValueError as err:
            problems.append(str(err))
    if opts.input_format != "yfcc" and opts.source != "yfcc":
        problems.append(f"--input_format={opts.input_format} reads --input files, not --source={opts.source}")
    if opts.columns and opts.input_format == "yfcc":
        problems.append("--columns applies to --input_format=csv, tsv, tsv_plain, parquet or jsonl")
    if not opts.output:
        problems.append("--output is required")
    for name in ("output", "cache"):
        # Beam matches and deletes these folders' files by pattern: a '[' made `run[1]` a character class, so a
        # whole job published nothing, deleted its staged dataset and left its lock behind.
        if set(getattr(opts, name) or "") & set(GLOB_CHARACTERS):
            problems.append(f"--{name} {getattr(opts, name)[:200]!r} holds one of {' '.join(GLOB_CHARACTERS)}, which "
                            "file patterns read as wildcards; name the folder without them")
    unknown = set(split_list(opts.formats)) - set(FORMATS)
    if unknown or not split_list(opts.formats):
        problems.append(f"--formats must be a non-empty subset of {','.join(FORMATS)} (got {opts.formats!r})")
    asked = split_list(opts.flickr_licenses)
    if not asked or not all(x in {str(license_id) for license_id in CC_BY_LICENSE_IDS} for x in asked):
        # The license re-check admits what this option names: an id beyond CC BY would let a photo relicensed
        # to it through, after the license stage had passed it as CC BY
        problems.append("--flickr_licenses must name CC BY license ids only: 4 (CC BY 2.0), 11 (CC BY 4.0) "
                        f"(got {opts.flickr_licenses!r})")
    if not split_list(opts.allowed_hosts):
        problems.append("--allowed_hosts must name at least one host")
    if not _CONTACT.fullmatch(opts.contact or ""):
        # It goes into every request's User-Agent: a trailing newline made each download a connection_error, and
        # the run was refused after the whole crawl as if the network had failed.
        problems.append(f"--contact {(opts.contact or '')[:80]!r} must be an http(s) URL without spaces or control "
                        "characters")
    for name in POSITIVE_INTS:
        if getattr(opts, name) <= 0:
            problems.append(f"--{name} must be positive")
    if not 0 < opts.detect_min_batch_size <= opts.detect_batch_size:
        problems.append("--detect_min_batch_size and --detect_batch_size must satisfy 0 < min <= max")
    for name in ("shards", "per_owner_cap", "max_retries", "detect_tile_min_side", "detect_threads"):
        if getattr(opts, name) < 0:
            problems.append(f"--{name} must not be negative")
    if not -1 <= opts.near_dup_distance <= 16:
        problems.append("--near_dup_distance must be within -1..16")
    if not -1 <= opts.near_dup_dhash_distance <= 64:
        problems.append("--near_dup_dhash_distance must be within -1..64")
    if opts.near_dup_key_blocks < 1 or opts.near_dup_bucket_cap < 2:
        problems.append("--near_dup_key_blocks must be >= 1 and --near_dup_bucket_cap >= 2")
    if opts.min_side > opts.max_side:
        problems.append("--min_side must not exceed --max_side")
    if not 0 <= opts.max_failure_rate <= 1:
        problems.append("--max_failure_rate must be within 0..1")
    if not 1 <= opts.jpeg_quality <= 100:
        problems.append("--jpeg_quality must be within 1..100")
    if not valid_draft_supersample(opts.draft_supersample):
        problems.append(DRAFT_SUPERSAMPLE_RANGE)
    if not valid_reducing_gap(opts.resize_reducing_gap):
        problems.append(REDUCING_GAP_RANGE)
    # Also refuses nan, which the heartbeat could not sleep; and a value like 1e-9, which logged a line at every turn
    # of its loop, flooding the log.
    if not MIN_PROGRESS_SECONDS <= opts.progress_seconds < float("inf"):
        problems.append(f"--progress_seconds must be a number of seconds of at least {MIN_PROGRESS_SECONDS:g}")
    return problems + _bounds_problems(opts) + _home_problems(opts)


def _home_problems(opts: PassOptions) -> list[str]:
    """Paths starting with '~': the shell expands it only at the start of an unquoted word (`--output=~/x` and
    `--input='~/x/*.bz2'` keep it), and the job took it as a name: --output='~/x' wrote a folder named '~' in the
    working directory, --input said only that it matched no file."""
    return [f"--{option.name} {value[:80]!r} starts with '~', which only the shell expands, at the start of an "
            f"unquoted word: give the whole path ({os.path.expanduser('~')}/…)" for option in DECLARED
            if isinstance(value := getattr(opts, option.name, None), str)
            and any(part.strip().startswith("~") for part in value.split(","))]


# Upper bounds no sensible run reaches, each far above its default: a typo (--shards=100000000: that many
# files per format) fails at launch instead of exhausting a worker or a filesystem.
UPPER_BOUNDS = {"shards": 100_000, "near_dup_bucket_cap": 100_000, "fetch_threads": 1024, "detect_threads": 256,
                "detect_batch_size": 4096, "max_side": 16_384, "images_per_shard": 10_000_000,
                "per_host_concurrency": 1024}
# Pigeonhole keys per image (C(distance + blocks, blocks)): 15 by default; past this the index construction
# alone takes minutes (--near_dup_key_blocks=48 with distance 16 asked for 4.9e14 keys).
MAX_NEAR_DUP_KEYS = 1000


def _bounds_problems(opts: PassOptions) -> list[str]:
    """Numbers that must be finite, positive, or below a bound: NaN or a negative timeout failed every fetch
    (a run refused after the crawl, exit 4, instead of at launch), --min_stddev=nan switched the blank check
    off silently."""
    problems = [f"--{name} must be a finite number of seconds above 0" for name in
                ("connect_timeout", "read_timeout", "fetch_deadline") if not 0 < getattr(opts, name) < math.inf]
    problems += [f"--{name} must be a finite number, 0 or more" for name in
                 ("backoff_base", "max_backoff", "per_host_rps", "flickr_calls_per_second")
                 if not 0 <= getattr(opts, name) < math.inf]
    # A rate's interval is slept: at 1e-10 a second (317 years) the second call's sleep raised OverflowError
    problems += [f"--{name} must be 0 (unpaced) or at least {MIN_RATE:.6f} (one an hour)"
                 for name in ("per_host_rps", "flickr_calls_per_second") if 0 < getattr(opts, name) < MIN_RATE]
    if not 0 <= opts.min_stddev <= 255:
        problems.append("--min_stddev must be within 0..255 (a pixel's standard deviation)")
    if opts.flickr_search_depth < 1:
        problems.append("--flickr_search_depth must be at least 1")
    problems += [f"--{name} must be at most {bound:,}" for name, bound in UPPER_BOUNDS.items()
                 if getattr(opts, name) > bound]
    if 0 <= opts.near_dup_distance <= 16 and opts.near_dup_key_blocks >= 1:
        blocks = max(1, min(opts.near_dup_key_blocks, 64 - opts.near_dup_distance))
        keys = math.comb(opts.near_dup_distance + blocks, blocks)
        if keys > MAX_NEAR_DUP_KEYS:
            problems.append(f"--near_dup_key_blocks={opts.near_dup_key_blocks} with --near_dup_distance="
                            f"{opts.near_dup_distance} makes {keys:,} keys per image (at most {MAX_NEAR_DUP_KEYS:,})")
    return problems
