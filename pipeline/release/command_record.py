"""What made a dataset, recorded in its manifest so that the same command run again can tell its own work.

A plain run records `run_fingerprint` and a refresh `refresh_fingerprint` (`release/refresh.py`): the options the
manifest records, the input files those options name (`input_files`: by content or by size), the models, and where a
path is relative a digest of the working folder, sealed over the files the manifest lists (`seal`), so that a dataset
edited and resealed since is no longer the command's. The same command's rerun finding its record exits 0 (a
scheduler retrying a run killed after it published sees success); anything else is another command's dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import flickrapi

from pipeline.io.files import is_remote, matching_sizes, size_and_sha256
from pipeline.io.http_client import masked_url
from pipeline.io.layout import manifest_of
from pipeline.options import PassOptions, recorded, split_list
from pipeline.stages.decontaminate import eval_glob, is_list_file

# Inputs held by their files' content: the takedown lists and the reviewers' decisions (small, read whole at launch
# anyway). The others by their files' sizes: a dump added to the input's glob, a table replaced at its path.
_BY_CONTENT = ("blocklist", "review_decisions")
_BY_SIZE = ("input", "decontaminate", "previous_index", "ledger")


def input_files(options: dict[str, Any]) -> dict[str, list[list[str]]]:
    """{option: [[file, its sha256 or size], ...]} for the input options set (beyond LISTED_FILES files, one digest of
    them: `_folded`); a file that cannot be read is held as such (the run then refuses it, and a rerun finding it
    readable is another command: another run, another refresh)."""
    held: dict[str, list[list[str]]] = {}
    for key in (*_BY_CONTENT, *_BY_SIZE):
        value = options.get(key)
        if not value:
            continue
        files = []
        for pattern in [str(value)] if key == "input" else split_list(str(value)):
            by_content = key in _BY_CONTENT
            if key == "decontaminate":
                # Read as the stage reads it: a folder was held by the folder's own size (4096 bytes on ext4, however
                # its images changed). A list file by its content: the images it names, by their names.
                by_content = is_list_file(pattern)
                pattern = pattern if by_content else eval_glob(pattern)
            # The sizes come with the listing: each file looked up again by its name was one more listing (an
            # evaluation set of 50,000 images on gs://, 50,000 requests), and a name holding '[' was read as a glob
            # there, found nowhere and held as unreadable whatever its size.
            try:
                found = matching_sizes(pattern)
            except Exception:  # a pattern no filesystem lists: held as such
                found = []
            if not found:
                files.append([pattern, _file_digest(pattern, by_content, None)])
            files += [[path, _file_digest(path, by_content, size)] for path, size in found]
        held[key] = files if len(files) <= LISTED_FILES else _folded(files)
    return held


# Beyond this many files an option's files are held as one digest of them: an evaluation set of 50,000 images given to
# --decontaminate (or a table exported as many shards) listed file by file made a manifest of megabytes, which every
# rerun, verify and the next refresh read whole.
LISTED_FILES = 1000


def _folded(files: list[list[str]]) -> list[list[str]]:
    """[[f"{n} files", f"sha256:{digest of their [path, size or sha256] list}"]]: any file added, removed, renamed or
    changed changes it, as the list itself would."""
    return [[f"{len(files)} files", f"sha256:{hashlib.sha256(canonical_json(sorted(files))).hexdigest()}"]]


def _file_digest(path: str, content: bool, size: int | None) -> str:
    try:
        if not content:
            if size is None:
                raise FileNotFoundError(path)
            return f"{size} bytes"
        return f"sha256:{size_and_sha256(path)[1]}"
    except Exception as err:  # missing, a folder, no access: what the run says in its own line
        return f"unreadable ({type(err).__name__})"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(body: dict[str, Any], files: Any, kind: str = "refresh", besides: tuple[str, ...] = ()) -> str:
    """The fingerprint's digest, over the files the manifest lists too (but those named `besides`): a release resealed
    after an edit (its manifest's checksums made to match changed files) no longer matches the record its refresh
    wrote. `kind`: which command's record ("refresh", "run")."""
    listed = sorted([str(entry.get("path")), str(entry.get("sha256"))] for entry in files
                    if isinstance(entry, dict) and entry.get("path") not in besides)
    return hashlib.sha256(canonical_json({kind: body, "files": listed})).hexdigest()


# The manifest's record of the plain run that made a dataset (`run_fingerprint`, sealed by `seal_run`).
RUN_FINGERPRINT = "run_fingerprint"
# Left out of a run's seal: stats.json holds what measures the run (its timings, peak memory), so that two runs of
# one command record the same, byte for byte. Its counts are verify's to check against the totals and rejections.
_UNSEALED = ("stats.json",)


def run_fingerprint(opts: PassOptions, models: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What makes a plain run's dataset this command's: the options the manifest records (the inputs among them; not
    the operational ones, --output, --cache, threads, timeouts, which decide no byte of it; but the Flickr API's
    endpoint, `api_endpoint`), the input files as a
    refresh holds them (`input_files`: a dump added to the glob or a takedown added to the list is another command)
    and the models it detects with. Taken at launch; nothing in it depends on the day or on the run. A file named by a
    relative path is held with the working folder it was read from (a digest of it: no folder's name is published):
    typed in another folder, whose file of that name and size held other rows, the same words were told done, exit 0,
    and those rows never read."""
    options = recorded(opts)
    body = {"options": options, "input_files": input_files(options), "models": list(models),
            **working_folder(options), **api_endpoint(opts)}
    return json.loads(json.dumps(body))


def api_endpoint(opts: PassOptions) -> dict[str, str]:
    """{"flickr_endpoint": --flickr_rest_url, its user info, query and fragment masked} where the run asks the Flickr
    API (--source=flickr, --verify_license) at an endpoint of its own, else {} (Flickr's, or no call: the records of
    runs made before stay theirs). Another endpoint (another proxy, another API) answers with other photos and other
    verdicts: the same words at it were told the dataset of the first was theirs. The option stays out of the
    manifest's `options` (a proxy's URL may carry its token); what may be a secret is masked here
    (`masked_url`), so a token renewed is the same endpoint."""
    url = opts.flickr_rest_url
    if not url or not (opts.source == "flickr" or opts.verify_license) or _is_flickrs_own(str(url)):
        return {}
    return {"flickr_endpoint": masked_url(str(url))}


def _is_flickrs_own(url: str) -> bool:
    """Whether `url` is the endpoint the Flickr client calls without --flickr_rest_url (flickrapi's), however its
    scheme and host are cased, with its default port or its final slash or without: the flag naming it asks the same
    API as no flag, and a rerun adding or dropping it was told "another command"."""
    try:
        given, own = urlsplit(url), urlsplit(flickrapi.FlickrAPI.REST_URL)
        port = given.port
    except ValueError:
        return False
    # no port is the default one (443); port 0 is none a call reaches, not the default
    return (given.scheme.lower(), given.hostname, 443 if port is None else port, given.path.rstrip("/"), given.query,
            given.fragment, given.username, given.password) == (own.scheme, own.hostname, 443, own.path.rstrip("/"),
                                                                 "", "", None, None)


def _named_files(options: dict[str, Any]) -> list[str]:
    """The paths and globs the input options name, as `input_files` reads them."""
    return [pattern for key in (*_BY_CONTENT, *_BY_SIZE) if options.get(key)
            for pattern in ([str(options[key])] if key == "input" else split_list(str(options[key])))]


def working_folder(options: dict[str, Any]) -> dict[str, str]:
    """{"working_folder": a digest of the folder the command runs in} where an input option names a local file by a
    relative path (the same words name other files in another folder), else {}: a digest, since no folder's name is
    published."""
    if all(is_remote(path) or os.path.isabs(path) for path in _named_files(options)):
        return {}
    return {"working_folder": hashlib.sha256(os.path.realpath(".").encode("utf-8", "surrogateescape")).hexdigest()}


def seal_run(made_by: dict[str, Any], files: Any) -> dict[str, Any]:
    """The manifest's `run_fingerprint`: `made_by` sealed over the files listed (all but stats.json)."""
    return {**made_by, "sha256": seal(made_by, files, "run", _UNSEALED)}


def sealed_record(manifest: Any, key: str, kind: str, besides: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None,
                                                                                               str]:
    """(the record `key` of `manifest` without its seal, "") where it is there and its seal (`seal`, of `kind`, over
    the files listed but `besides`) matches the manifest's files; else (None, "missing") for a manifest that records
    none, or (None, "edited") for a record that does not match it (the record or a file edited and resealed since)."""
    record = manifest.get(key) if isinstance(manifest, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None, "missing"
    made = {name: value for name, value in record.items() if name != "sha256"}
    files = manifest.get("files")
    if not isinstance(files, list) or record["sha256"] != seal(made, files, kind, besides):
        return None, "edited"
    return made, ""


def made_by_this_run(folder: str, mine: dict[str, Any]) -> bool:
    """Whether the dataset in `folder` records that a run fingerprinted `mine` made it, its record intact (a dataset
    without one, written before runs recorded it, is no run's that can be told; one whose files were edited and
    resealed since, or whose record was, is not this run's)."""
    made, _ = sealed_record(manifest_of(folder), RUN_FINGERPRINT, "run", _UNSEALED)
    return made is not None and canonical_json(as_recorded_now(made)) == canonical_json(mine)


def as_recorded_now(made: dict[str, Any]) -> dict[str, Any]:
    """A record (its seal checked) as this version records the command: Flickr's own endpoint, which a version before
    `api_endpoint` read it as no flag recorded, is none (its rerun given the same flag was told another command)."""
    endpoint = made.get("flickr_endpoint")
    if isinstance(endpoint, str) and _is_flickrs_own(endpoint):
        return {name: value for name, value in made.items() if name != "flickr_endpoint"}
    return made
