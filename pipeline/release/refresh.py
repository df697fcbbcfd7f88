"""Versioned releases and the monthly refresh.

A release lives under `ROOT/releases/NAME/` (NAME defaults to the launch month, YYYY-MM) and is
never modified after its manifest is written: a refresh refuses a finished release as its output,
refuses to write inside or above its previous release, and only ever reads the previous one.
Writes go through temporary names and renames inside the new release's folder only (no sink of
this job deletes by pattern).

`pass-pipeline refresh --previous=ROOT/releases/2026-10 --output=ROOT [run flags]`:
- checks the previous release against its manifest first;
- Flickr source: searches the upload window after the previous release's (to --max_upload_date,
  default yesterday, UTC);
- carries the previous release's images over without refetching (`--carry_over`), re-verifying
  their licenses when --verify_license is given and applying the takedown blocklist;
- compares new images with the previous release's near-duplicate index;
- runs detection on new images;
- uses a work cache under ROOT/work/NAME/cache, so a killed refresh run again resumes (removed once
  the release is published);
- writes CHANGELOG.md and changelog.json (added; removed by reason; unchanged) and the datasheet,
  and records all of them in the manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.io.file_pins import UNCHECKED, VERIFIED, ChangedSinceChecked, Pins
from pipeline.io.files import (
    canonical_path,
    is_remote,
    matching,
    read_parquet,
    write_atomically,
    write_json,
)
from pipeline.io.layout import (
    MAX_MANIFEST_BYTES,
    is_published,
    manifest_of,
    published_releases,
    release_dir,
    work_cache,
)
from pipeline.io.regular_files import read_at_most
from pipeline.io.report import read_manifest, update_manifest
from pipeline.options import INHERITED, PassOptions, parse_date, recorded, split_list
from pipeline.printable import printable
from pipeline.release.carry import release_name
from pipeline.release.command_record import (
    api_endpoint,
    as_recorded_now,
    canonical_json,
    input_files,
    seal,
    sealed_record,
    working_folder,
)
from pipeline.release.id_sets import IdCount, IdSet
from pipeline.release.markdown_html import escape_markdown

# Options a refresh inherits from the previous release unless given again: what shapes the content.

class ReleaseError(Exception):
    pass


# A folder name: no separator, and no leading dot, so never ".", ".." (the releases' folder itself, or the
# root above it) nor a hidden folder.
RELEASE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_release_name(name: str) -> str:
    if not RELEASE_NAME.fullmatch(name):
        raise ReleaseError(f"--release {name[:60]!r}: a release name is letters, digits, '.', '_' and '-', not "
                           "starting with '.' (one folder under OUTPUT/releases)")
    return name


def _norm(path: str) -> str:
    """A folder in one spelling (`releases/./2026-10` and `releases/2026-10/` equal), ending in '/' for prefixes."""
    return canonical_path(path).rstrip("/") + "/"


def default_name(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m")


def latest_release(root: str, besides: str = "") -> str | None:
    """The newest published release under ROOT/releases (the one made last, `published_releases`), or None.
    `besides`: a release name left out (what `latest` was when that release was made)."""
    unreadable: list[str] = []
    published = [folder for folder in published_releases(root, unreadable)
                 if folder.rstrip("/").rsplit("/", 1)[-1] != besides]
    if unreadable:
        # Passed over, a newest release whose manifest was damaged (or replaced by a pipe) made `latest` the one before
        # it, and the refresh brought back what the newer one had removed.
        raise ReleaseError(f"{unreadable[0][:200]}/manifest.json cannot be read (no JSON, no regular file, or over "
                           f"{MAX_MANIFEST_BYTES:,} bytes), so --previous=latest cannot tell which release is the "
                           "newest: mend or move that folder, or give --previous=FOLDER")
    return published[-1] if published else None


def check_new_release(target: str, previous: str | None) -> None:
    """A refresh may resume an unfinished release, never touch a finished one or its predecessor, nor a dataset
    that a plain `run` wrote where the release goes (it replaced such a dataset without a word)."""
    if is_published(target):
        raise ReleaseError(f"{target} is a finished release; releases are never modified")
    manifest = manifest_of(target)
    name = target.rstrip("/").rsplit("/", 1)[-1]
    options = manifest.get("options") if isinstance(manifest, dict) else None
    if isinstance(manifest, dict) and not (isinstance(options, dict) and options.get("release_name") == name):
        raise ReleaseError(f"{target} holds a dataset that no refresh of release {name} wrote (a `run` into it?); a "
                           "refresh never replaces one: move it away, or make the first release with `refresh`")
    if previous:
        new, old = _norm(target), _norm(previous)
        if new.startswith(old) or old.startswith(new):
            raise ReleaseError(f"the new release {target} must not be inside, above or equal to {previous}")


# Inherited options added after releases were made with the code they change: a release whose manifest has no
# value for one stored its images as this value does (the new default would change the bytes of what a refresh
# adds; near-threshold blank decisions may still differ: the blank check changed the same day).
BEFORE_THE_OPTION = {"resize_reducing_gap": "0"}


# Inherited options that name files (lists of them, for the first two), and the words that are no file.
_INHERITED_PATHS = {"blocklist": True, "decontaminate": True, "model_registry": False, "review_decisions": False,
                    "fusion": False}
_NOT_PATHS = {"fusion": ("default", "none")}


def relative_paths(key: str, value: str) -> list[str]:
    """The relative local paths an inherited option names: recorded as typed, they would be read from wherever the
    next refresh runs (another takedown list, or an old copy of it, without a word)."""
    return [item for item in _local_items(key, value) if not posixpath.isabs(item) and not os.path.isabs(item)]


def not_files(key: str, value: str) -> list[str]:
    """The local paths an inherited option names that are no regular file (nor, for --decontaminate, a folder): a
    pipe (`--blocklist=<(cmd)`, /dev/fd/63) is read once for the refresh's fingerprint, which took what it held, and
    the run then read it empty (no takedown applied); and the next refresh, inheriting the path, reads it again."""
    return [item for item in _local_items(key, value) if os.path.exists(item) and not os.path.isfile(item)
            and not (key == "decontaminate" and os.path.isdir(item))]


def _local_items(key: str, value: str) -> list[str]:
    """The paths on this machine an inherited option's value names (none for other options or object stores)."""
    if key not in _INHERITED_PATHS:
        return []
    items = split_list(value) if _INHERITED_PATHS[key] else [value] if value else []  # empty: no file
    return [item for item in items if item not in _NOT_PATHS.get(key, ()) and not is_remote(item)]


def refresh_argv(previous: str | None, root: str, name: str, rest: Sequence[str],
                 models: Callable[[Sequence[str]], Sequence[dict[str, Any]]], today: dt.date | None = None,
                 pins: Pins = UNCHECKED) -> list[str]:
    """The `run` flags of a refresh: the user's, plus what the previous release implies.
    `models(argv)`: the manifest's model entries (detectors, fusion) a run with these flags would record. `pins`:
    the versions verify read (`file_pins`): the previous manifest is read as verify read it, or refused (another
    one put in its place since named other options: a takedown list left out)."""
    given = given_options(rest)
    target = release_dir(root, name)
    argv = [*rest, f"--output={target}", f"--release_name={name}",
            f"--cache={work_cache(root, name)}"]
    if not previous:
        return argv
    manifest = checked_manifest(previous, pins) if pins.covers(previous) else read_manifest(previous)
    options = _recorded_options(manifest, previous)
    for key in INHERITED:
        if key in given:
            continue
        if key not in options and key in BEFORE_THE_OPTION:  # the previous release predates the option
            argv.append(f"--{key}={BEFORE_THE_OPTION[key]}")
        elif options.get(key) not in (None, ""):
            value = options[key]
            if relative := relative_paths(key, str(value)):
                raise ReleaseError(f"{previous}/manifest.json names --{key}={str(value)[:200]!r}: {relative[0][:80]!r} "
                                   "is a relative path, which this refresh would read from wherever it is launched; "
                                   f"give --{key}=ABSOLUTE_PATH (or --{key}= to drop it)")
            argv.append(f"--{key}={str(value).lower() if isinstance(value, bool) else value}")
    argv += [f"--carry_over={previous}"]
    ledgers = FileSystems.join(previous, "ledger", "*.parquet")
    # With pins, the ledger verify read though it is gone since: the run then says so (the refresh ran without it,
    # and decided again every photo it had decided, the takedowns by content among them)
    if "ledger" not in given and pins.listed(ledgers, matching(ledgers)):
        argv.append(f"--ledger={FileSystems.join(previous, 'ledger', '*.parquet')}")
    if "redetect" not in given and models_changed(manifest, models(argv)):
        argv.append("--redetect")
    if options.get("source") == "flickr" and "min_upload_date" not in given:
        last = str(options.get("max_upload_date", ""))
        try:
            end = _recorded_day(last) + (0 if last.strip().isascii() and last.strip().isdigit() else 86399)
        except ValueError:
            raise ReleaseError(f"{previous}/manifest.json: the Flickr release's max_upload_date {last[:40]!r} is "
                               "no date (YYYY-MM-DD) or epoch seconds; give --min_upload_date") from None
        yesterday = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1)
        argv += [f"--min_upload_date={end + 1}"]
        if "max_upload_date" not in given:
            argv.append(f"--max_upload_date={yesterday.isoformat()}")
    return argv


def _recorded_day(value: str) -> int:
    """A previous release's recorded upload date as `parse_date` reads it; one it refuses that strptime took (a
    release made before dates were read as YYYY-MM-DD alone recorded them as typed: '2020-9-10', other scripts'
    digits) is read as that release's run read it, so that its refresh starts where it ended (it was refused as
    naming no date, and the monthly refresh stopped until --min_upload_date was given by hand)."""
    try:
        return parse_date(value)
    except ValueError:
        day = dt.datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=dt.UTC)
        return int(day.timestamp())


def checked_manifest(release: str, pins: Pins) -> Any:
    """The release's manifest.json, the version verify read (`file_pins`), parsed."""
    path = FileSystems.join(release, "manifest.json")
    with pins.open(path, VERIFIED) as handle:
        data = read_at_most(handle, MAX_MANIFEST_BYTES + 1)
        pins.check(path, handle, VERIFIED)
    return json.loads(data)


def given_options(rest: Sequence[str]) -> set[str]:
    """The options the user gave (`--key=value` or `--key value`), by name."""
    return {arg.split("=", 1)[0].lstrip("-") for arg in rest if arg.startswith("--")}


# The manifest's record of the refresh that made the release (`fingerprint`, sealed by `finish`).
FINGERPRINT = "refresh_fingerprint"


def fingerprint(previous: str | None, name: str, argv: Sequence[str], rest: Sequence[str],
                models: Callable[[Sequence[str]], Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """What makes a refresh this refresh: its release, the previous release it builds on (one spelling of the folder),
    the options its run records (the inputs among them) and the models it detects with. `argv`: `refresh_argv`'s.
    Left out: what follows from the previous release (--carry_over, and --ledger unless given), from the day it runs
    (--max_upload_date unless given: the retry of a refresh the next day is that refresh) and where the releases lie
    (--output and --cache are not recorded: the release compared is the one found there). The input files are held as
    `command_record.input_files` holds them (a takedown added to the list at its path is another refresh), and a
    relative path with the working folder it was typed in (`command_record.working_folder`)."""
    given = given_options(rest)
    opts = PipelineOptions(list(argv)).view_as(PassOptions)
    options = recorded(opts)
    derived = {"release_name", "carry_over"} | {key for key in ("ledger", "max_upload_date") if key not in given}
    kept = {key: value for key, value in sorted(options.items()) if key not in derived}
    body = {"release": name, "previous": canonical_path(previous) if previous else None, "options": kept,
            "input_files": input_files(kept), "models": list(models(argv)), **working_folder(kept),
            **api_endpoint(opts)}
    return json.loads(json.dumps(body))  # as read back from the manifest: lists, not tuples


def made_by_another(target: str, mine: dict[str, Any]) -> str | None:
    """None when the published release `target` records that the refresh fingerprinted `mine` made it; otherwise why
    it cannot be taken for that refresh's, in a clause: no record (made before releases had one), a record that does
    not match its manifest (edited by hand), or what differs."""
    manifest = manifest_of(target)
    made, why = sealed_record(manifest, FINGERPRINT, "refresh")
    if why == "missing":
        return "its manifest records no fingerprint of the refresh that made it, so no rerun can be told to be that one"
    if made is None or made.get("release") != manifest.get("release"):
        return "its record of the refresh that made it does not match its manifest (edited by hand?)"
    made = as_recorded_now(made)
    if canonical_json(made) == canonical_json(mine):
        return None
    return f"it was made by another refresh: {_differences(made, mine)}"


def _differences(made: dict[str, Any], mine: dict[str, Any], shown: int = 3) -> str:
    def value(option: Any, limit: int = 80) -> str:
        """Said on one line: a record outside input may hold any text. Each unprintable character escaped as every
        other line escapes it (it was a `?`: the character lost, read like a URL's own `?`), cut at `limit` where no
        escape is split."""
        text = "(none)" if option in (None, "") else str(option).lower() if isinstance(option, bool) else str(option)
        return printable(text, limit=limit)

    found = []
    if made.get("previous") != mine["previous"]:
        found.append(f"built on {value(made.get('previous') or 'no previous release', 200)}, not on "
                     f"{value(mine['previous'] or 'none', 200)}")
    theirs = options if isinstance(options := made.get("options"), dict) else {}
    for key in sorted(set(theirs) | set(mine["options"])):
        if theirs.get(key) != mine["options"].get(key):
            found.append(f"--{key}={value(theirs.get(key))} there, {value(mine['options'].get(key))} here")
    theirs_files = files if isinstance(files := made.get("input_files"), dict) else {}
    for key in sorted(set(theirs_files) | set(mine["input_files"])):
        if key not in theirs or theirs.get(key) != mine["options"].get(key):
            continue  # named as an option above
        if canonical_json(theirs_files.get(key)) != canonical_json(mine["input_files"].get(key)):
            found.append(f"--{key}'s files changed since (their list, content or size)")
    if canonical_json(made.get("models")) != canonical_json(mine["models"]):
        found.append("other models (detectors, their files, thresholds or fusion)")
    if "working_folder" in made and "working_folder" in mine and made["working_folder"] != mine["working_folder"]:
        found.append("typed in another working folder (where a relative path names other files)")
    elif "working_folder" in mine and "working_folder" not in made and not found:
        # the same words, recorded before records held the folder: nothing says it was another one
        found.append("its record holds no working folder (made before records held one), so which folder a relative "
                     "path was read from cannot be told")
    if made.get("flickr_endpoint") != mine.get("flickr_endpoint"):
        found.append(f"--flickr_rest_url={value(made.get('flickr_endpoint'), 200)} there, "
                     f"{value(mine.get('flickr_endpoint'), 200)} here")
    if not found:
        found.append("its record differs")
    return "; ".join(found[:shown]) + (f" and {len(found) - shown} more" if len(found) > shown else "")


def _recorded_options(manifest: Any, previous: str) -> dict[str, Any]:
    """The options a previous release recorded, checked for the shape a run writes (a release folder is
    outside input; verify checks its files, not what its manifest says): one line naming the manifest."""
    where = f"{previous}/manifest.json"
    if not isinstance(manifest, dict):
        raise ReleaseError(f"{where} is not a JSON object")
    options = manifest.get("options", {})
    if not isinstance(options, dict) or not all(
            isinstance(value, str | bool | int | float) or value is None for value in options.values()):
        raise ReleaseError(f'{where}: "options" must be an object of plain values')
    models = manifest.get("models", [])
    if not isinstance(models, list) or not all(
            isinstance(m, dict) and {"name", "sha256", "thresholds", "review_band"} <= set(m) for m in models):
        raise ReleaseError(f'{where}: "models" must be a list of entries with name, sha256, thresholds and review_band')
    return options


def models_changed(previous_manifest: dict[str, Any], models: Sequence[dict[str, Any]]) -> bool:
    """Whether what decides detection now (detectors' names, files' sha256, thresholds, bands, context
    columns and probes, and the fusion model) differs from what the previous release was checked with: then
    its images are checked again."""
    def key(entries: Sequence[dict[str, Any]]) -> list[str]:
        return sorted(str((m["name"], m["sha256"], m["thresholds"], m["review_band"], m.get("context_columns"),
                           m.get("context_probes")))
                      for m in entries)

    return key(models) != key(previous_manifest.get("models", []))


class UnreadableShard(ValueError):
    """A release's Parquet shard its photo ids could not be read from (its path), `shard` (relative to the release)
    and `why`."""

    def __init__(self, path: str, shard: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.shard, self.why = shard, why


# An id that is a number's one spelling (`records.id_number`: ASCII digits, no leading zero, at most 19), in RE2's
# words, whose `$` is the end of the text (Python's also matches before a final newline).
_ONE_SPELLING = r"^[1-9][0-9]{0,18}$"


def photo_ids(release: str, places: dict[str, str] | None = None, pins: Pins = UNCHECKED) -> IdSet:
    """The release's photo ids (an `IdSet`: 1.44 million of them as a set of text took 184 MiB). `places`: filled
    with the place ("NAME/parquet/SHARD:ROW", as release/carry.py names a carried row) of each id that is not a plain
    number, which is what a rejection of its carried row names instead of the id. `UnreadableShard` naming a shard
    that is no Parquet file (pyarrow's error names no file). `pins`: the versions verify read (`file_pins`), which
    each shard must still be (`ChangedSinceChecked` otherwise)."""
    ids = IdCount()
    pattern = FileSystems.join(release, "parquet", "*.parquet")
    for path in pins.listed(pattern, matching(pattern)):
        shard = f"{release_name(release)}/parquet/{posixpath.basename(path)}"
        try:
            column = read_parquet(path, ["photo_id"], pins).column(0)
        except ChangedSinceChecked:
            raise
        except (OSError, ValueError, pa.ArrowException) as err:
            raise UnreadableShard(path, f"parquet/{posixpath.basename(path)}",
                                  " ".join(f"{type(err).__name__}: {err}".split())[:200]) from None
        rows: range | list[int]
        values, rows = column, range(1, len(column) + 1)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # The ids that are a number's one spelling taken as numbers by Arrow, never made Python text (1.44 million
            # of them were, ~60 bytes each, made and let go a shard at a time); the others as before, by their rows
            numbered = pc.fill_null(pc.match_substring_regex(column, _ONE_SPELLING), False)
            ids.add_numbers(pc.cast(pc.filter(column, numbered), pa.uint64()).to_numpy())
            others = np.flatnonzero(~numbered.to_numpy())
            values, rows = pc.take(column, others), (others + 1).tolist()
        for row, value in zip(rows, values.to_pylist(), strict=True):
            # An id of another type than text (a resealed shard's int64 column passes verify) failed the refresh here,
            # after its job: named as text, a null by its place
            photo_id = value if isinstance(value, str) else f"{shard}:{row}" if value is None else str(value)
            ids.add(photo_id)
            if places is not None and not (isinstance(value, str) and value.isascii() and value.isdigit()):
                places[f"{shard}:{row}"] = photo_id
    return ids.ids()


# Rejections made Python objects at a time: a shard's 500,000 rows made dicts at once were ~230 MB.
_REJECTION_ROWS = 4096


def _as_int(photo_id: str) -> int:
    """The number an id spells, for the changelog's order; -1 for text that spells none. str.isdigit() is true of
    digits int() refuses ('²', '①'): a resealed release holding such an id ended the refresh with a ValueError."""
    try:
        return int(photo_id) if photo_id.isdigit() else -1
    except ValueError:
        return -1


def _ordered(ids: IdSet) -> list[str]:
    """The ids in the changelog's order, `sorted(ids, key=lambda i: (_as_int(i), i))`: the texts that spell no number
    first, in the order of text, then by the number each spells, two spellings of one number in the order of text.
    Without a key per id: a first refresh adds a whole release, and 1.44 million keys (a tuple and an int each) took
    ~140 MB beside the ids. The set's numbers are in order already (each the one spelling of its number); only its
    other ids are sorted, and each that spells a number ('007', '٣', 20 digits) put among them where it goes."""
    numbers = ids.numbers
    others = sorted(ids.others, key=lambda i: (_as_int(i), i))
    spelled = next((at for at, photo_id in enumerate(others) if _as_int(photo_id) >= 0), len(others))
    found, start = others[:spelled], 0
    for photo_id in others[spelled:]:
        value = _as_int(photo_id)
        at = len(numbers) if value >= 1 << 64 else int(np.searchsorted(numbers, np.uint64(value)))
        if at < len(numbers) and int(numbers[at]) == value and str(value) < photo_id:
            at += 1  # after the number's one spelling
        found += _spelled(numbers[start:at])
        found.append(photo_id)
        start = at
    found += _spelled(numbers[start:])
    return found


def _spelled(numbers: np.ndarray) -> Iterator[str]:
    """The numbers as text, `_TEXT_AT_ONCE` at a time."""
    for start in range(0, len(numbers), _TEXT_AT_ONCE):
        yield from map(str, numbers[start:start + _TEXT_AT_ONCE].tolist())


_TEXT_AT_ONCE = 1 << 16


def changelog(previous: str, release: str, name: str = "", pins: Pins = UNCHECKED) -> dict[str, Any]:
    """Added ids, removed ids by reason (from this release's rejections), and the unchanged count. `name`: the
    release's (default: its folder's, which a staging folder is not). `pins`: the versions of the previous release's
    files verify read (`file_pins`), where it read them."""
    pins = pins if pins.covers(previous) else UNCHECKED
    places: dict[str, str] = {}
    before, after = photo_ids(previous, places, pins), photo_ids(release)
    removed_ids = before - after
    carried = f"{release_name(previous)}/parquet/"  # where a carried copy's rejection points (release/carry.py)
    why: dict[str, tuple[bool, str, str]] = {}
    skipped = 0
    for path in matching(FileSystems.join(release, "rejections", "*.parquet")):
        table = read_parquet(path, ["photo_id", "stage", "reason", "source_ref"])
        for rows in (batch.to_pylist() for batch in table.to_batches(_REJECTION_ROWS)):
            # A carried row whose id is no plain number is rejected under its place, not its id
            ids = [places.get(row["photo_id"], row["photo_id"]) for row in rows]
            for row, photo_id, removed in zip(rows, ids, removed_ids.holds_each(ids), strict=True):
                if row["stage"] == "ledger":  # a row of the dump the ledger skipped: not why a photo left
                    skipped += 1
                elif removed:
                    # The rejection of the carried copy is why the photo left; one of a new row for the same id (a
                    # licence changed to BY-NC, say) is not: the copy may have left over the owner cap.
                    ranked = (not (row["source_ref"] or "").startswith(carried), row["stage"], row["reason"])
                    why[photo_id] = min(why.get(photo_id, ranked), ranked)
    reasons: dict[str, list[str]] = {}
    for photo_id, (_, stage, reason) in sorted(why.items()):
        reasons.setdefault(f"{stage}/{reason}", []).append(photo_id)
    unaccounted = removed_ids - IdSet.of(why)
    if unaccounted:  # cannot happen while every carried image is accounted for; say so if it does
        reasons["unaccounted"] = sorted(unaccounted)

    def order(ids: Any) -> list[str]:
        return _ordered(IdSet.of(ids))

    return {
        "release": name or release.rstrip("/").rsplit("/", 1)[-1],
        "previous": previous.rstrip("/").rsplit("/", 1)[-1],
        "added": order(after - before),
        "removed": {reason: order(ids) for reason, ids in sorted(reasons.items())},
        "unchanged": len(before & after),
        "skipped_as_decided": skipped,  # input rows not fetched again: an earlier release decided them
        "totals": {"previous": len(before), "release": len(after)},
    }


def changelog_markdown(log: dict[str, Any], limit: int = 200) -> str:
    lines = [f"# Changes in {escape_markdown(log['release'])} (since {escape_markdown(log['previous'])})", "",
             f"- {log['totals']['release']:,} images ({log['totals']['previous']:,} before)",
             f"- added: {len(log['added']):,}",
             f"- removed: {sum(len(ids) for ids in log['removed'].values()):,}",
             f"- unchanged: {log['unchanged']:,}",
             f"- input rows skipped as already decided (not fetched again): {log.get('skipped_as_decided', 0):,}", ""]
    # Ids and reasons escaped: the previous release's ids are outside input (a resealed shard's id
    # '![x](https://evil.example/b.png)' was a beacon wherever CHANGELOG.md is rendered)
    for reason, ids in log["removed"].items():
        shown = ", ".join(map(escape_markdown, ids[:limit])) + (
            f", … ({len(ids) - limit} more in changelog.json)" if len(ids) > limit else "")
        lines += [f"## Removed: {escape_markdown(reason)} ({len(ids):,})", "", shown, ""]
    if log["added"]:
        shown = ", ".join(map(escape_markdown, log["added"][:limit])) + (" …" if len(log["added"]) > limit else "")
        lines += [f"## Added ({len(log['added']):,})", "", shown, ""]
    return "\n".join(lines)


def finish(release: str, previous: str | None, name: str, made_by: dict[str, Any] | None = None,
           pins: Pins = UNCHECKED) -> dict[str, Any] | None:
    """After the job, before publishing: changelog and datasheet, all recorded in the manifest with the release's
    name and `made_by`, the refresh's `fingerprint`, sealed over the files listed (its rerun, finding the release
    published, tells by it that it is the same refresh). `release` is the run's staging folder
    (commands/refresh.py), so that they are published with its files. `pins`: `changelog`'s."""
    from pipeline.release.datasheet import write_datasheet

    entries = []
    log = None
    if previous:
        log = changelog(previous, release, name, pins)
        entries.append({**write_json(release, "changelog.json", log), "format": "changelog"})
        text = changelog_markdown(log).encode("utf-8")
        entries.append({"path": "CHANGELOG.md", "format": "changelog",
                        **write_atomically(FileSystems.join(release, "CHANGELOG.md"), lambda h: h.write(text))})
    entries += write_datasheet(release, log, name)
    manifest = update_manifest(release, entries, release=name, previous_release=previous or None)
    if made_by is not None:
        update_manifest(release, (), **{FINGERPRINT: {**made_by, "sha256": seal(made_by, manifest["files"])}})
    return log
