"""Where things live in an output folder and under a releases root, whether a folder holds a
published release, and how a finished run is published into its folder.

A run never writes into `--output` directly: it writes into `OUTPUT/_staging/RUN_ID/` and, once
the job has succeeded and its manifest is written, `publish` replaces whatever the folder held
with the staged files. So a dataset folder only ever holds one complete run, a run killed before
publishing leaves nothing but its staging folder (removed by the next run), and `--overwrite`
replaces an old dataset only once the new one exists.

Publishing is a sequence of renames, so it can be killed half-way. It first writes its plan into the
staging folder (PUBLISHING: the files it will move in), then removes the old manifest (from then on the
folder claims no dataset), the old run's other files, and moves the new files in, the manifest last.
The next run into the folder finishes an interrupted publish from its plan before anything else
(`finish_interrupted_publish`): the killed run had succeeded, so its dataset is the one to publish,
and no state in between is ever taken for a dataset. Every module that names these paths asks here."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from apache_beam.io.filesystems import FileSystems

from pipeline.io.file_reads import is_remote
from pipeline.io.files import canonical_path, matching, read_regular_file, write_atomically
from pipeline.io.gcs_client import folder_names
from pipeline.io.lock import LOCK_TEMPORARY

MANIFEST = "manifest.json"
STATS = "stats.json"
ATTRIBUTION = "ATTRIBUTION.csv"
FORMAT_FOLDERS = ("webdataset", "parquet", "tfrecord")
# Everything a run writes into its --output (folders hold shards), and what a refresh adds to a release
# once it is published (changelog, datasheet): a rerun replaces all of it.
RUN_FOLDERS = (*FORMAT_FOLDERS, "rejections", "near_dup_index", "review", "ledger", "datasheet")
DATASET_CARD = "README.md"  # the Hugging Face dataset card (io/dataset_card.py)
RUN_FILES = (MANIFEST, STATS, ATTRIBUTION, DATASET_CARD, "CHANGELOG.md", "changelog.json", "DATASHEET.md",
             "datasheet.html")
STAGING = "_staging"
# Inside a staging folder: the run's stored images, by sha256 (io/staged_images.py); never published.
STAGED_IMAGES = "_images"
# Inside a staging folder: parts a writer merges into one file (ATTRIBUTION.csv's); never published.
STAGED_PARTS = "_parts"
# Inside a staging folder: the takedown lists and the review decisions as the job read them at launch
# (io/staged_copy.py); never published.
STAGED_LISTS = "_lists"
# Inside a staging folder: the publish plan, written when publishing starts (see the module docstring).
PUBLISHING = "PUBLISHING.json"
# What every path a run writes looks like: relative, "/"-separated, no empty, "." or ".." part, no
# backslash, colon or drive letter. Anything else could name a file outside the folder.
RUN_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def release_dir(root: str, name: str) -> str:
    return FileSystems.join(root, "releases", name)


def work_folder(root: str, name: str) -> str:
    """A refresh's own folder beside the releases (its work cache), removed once its release is published."""
    return FileSystems.join(root, "work", name)


def work_names(root: str) -> list[str]:
    """The names of the folders under ROOT/work (each a refresh's work cache, `work_folder`, or a link to one), sorted;
    none where there is no such folder."""
    return folder_names_in(FileSystems.join(root, "work"))


def folder_names_in(folder: str) -> list[str]:
    """The names of the folders (or links) directly in `folder`, sorted; none where it is no folder. On gs://, one
    listing by folder: a listing of its objects would read every image a work cache or a stopped run's staging folder
    holds. On another Beam filesystem, which Beam lists by folder nowhere, from the listing of every object under it
    (`_folder_names_listed`)."""
    if folder.startswith("gs://"):
        return folder_names(folder)
    if is_remote(folder):
        return _folder_names_listed(folder)
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entry.name for entry in entries if entry.is_symlink() or entry.is_dir(follow_symlinks=False))


def _folder_names_listed(folder: str) -> list[str]:
    """`folder_names_in` on a Beam filesystem other than gs:// (s3://, azfs://, hdfs://), for which Beam has no listing
    by folder: the first name below `folder` of each path that Beam's listing of everything under it gives. On an
    object store (no folders) only names with objects below them are folders; where the filesystem has folders (HDFS
    lists one level), each entry. Such a root went through the gs:// client, which refused it: every refresh said that
    ROOT/work could not be listed, and none tended it. Reads every object's name under `folder`: a work cache holds a
    few Parquet files a bundle, but a stopped run's staging folder under ROOT/releases an object per image."""
    prefix = folder.rstrip("/") + "/"
    folders_only = not FileSystems.get_filesystem(prefix).has_dirs()
    names = set()
    for path in matching(f"{prefix}**"):
        name, below, _ = path.removeprefix(prefix).partition("/")
        if name and (below or not folders_only):
            names.add(name)
    return sorted(names)


def work_cache(root: str, name: str) -> str:
    return FileSystems.join(work_folder(root, name), "cache")


# A run's manifest lists each file in ~250 bytes (a release of 1.4M photos in shards of 5,000: a few hundred kB).
MAX_MANIFEST_BYTES = 64 << 20


def manifest_of(folder: str) -> Any:  # any JSON value: callers check it is a dict
    """The folder's manifest; None when there is none, or it is no JSON, no regular file or over MAX_MANIFEST_BYTES
    (a dataset verify would refuse). A release folder is outside input: a manifest.json that was a named pipe hung
    `--previous=latest` (which reads every release's) for good, one linked to /dev/zero read until memory ran out."""
    path = FileSystems.join(folder, MANIFEST)
    try:
        return json.loads(read_regular_file(path, MAX_MANIFEST_BYTES)) if FileSystems.exists(path) else None
    except (ValueError, RecursionError):
        return None


def is_published(folder: str) -> bool:
    """A run writes manifest.json last; a refresh then adds the release's name: only then is the
    folder a published (immutable) release."""
    manifest = manifest_of(folder)
    return bool(isinstance(manifest, dict) and manifest.get("release"))


def holds_run(folder: str) -> list[str]:
    """The run markers (manifest, stats) present in `folder`: non-empty when a run finished there."""
    return [name for name in (MANIFEST, STATS) if FileSystems.exists(FileSystems.join(folder, name))]


# The time a manifest says its run made it (io/report.py), as written: these strings sort in time order.
_CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def published_releases(root: str, unreadable: list[str] | None = None) -> list[str]:
    """Folders of the published releases under ROOT/releases, oldest first: by the time each was made (its
    manifest's `created`), then by name. Names alone misordered them (`v1` or `initial` after `2026-12`, `2026-9`
    after `2026-10`), and `--previous=latest` then built every later release on an older one, bringing back what
    the newer ones had removed. `unreadable`: gets each folder whose manifest.json is there but cannot be read
    (`manifest_of`), of which nobody can tell whether it is a release, or the newest."""
    found = []
    for path in matching(FileSystems.join(root, "releases", "*", MANIFEST)):
        folder = path.rsplit("/", 1)[0]
        manifest = manifest_of(folder)
        if manifest is None and unreadable is not None:
            unreadable.append(folder)
        if isinstance(manifest, dict) and manifest.get("release"):
            created = manifest.get("created")
            made = created if isinstance(created, str) and _CREATED.fullmatch(created) else ""
            found.append((made, folder.rsplit("/", 1)[-1], folder))
    return [folder for _, _, folder in sorted(found)]


def run_files(folder: str) -> list[str]:
    """Every file a finished or partial run left in `folder` (not its staging area or lock, nor the lock's
    temporary: another run's, which it removes itself a moment later)."""
    patterns = [FileSystems.join(folder, sub, "*") for sub in RUN_FOLDERS]
    patterns += [FileSystems.join(folder, name) for name in RUN_FILES] + [FileSystems.join(folder, "*.tmp-*")]
    lock_temporary = FileSystems.join(folder, LOCK_TEMPORARY)
    return [path for pattern in patterns for path in matching(pattern) if not path.startswith(lock_temporary)]


def staging_dir(output: str, run_id: str) -> str:
    return FileSystems.join(output, STAGING, run_id)


def _is_dir(path: str) -> bool:
    return not is_remote(path) and os.path.isdir(path)  # object stores have no directories


def files_under(folder: str) -> list[str]:
    """The files directly in `folder` and one level below (a run's layout), sorted."""
    top = [path for path in matching(FileSystems.join(folder, "*")) if not _is_dir(path)]
    return sorted(top + [path for path in matching(FileSystems.join(folder, "*", "*")) if not _is_dir(path)])


def remove_folder(folder: str) -> bool:
    """Deletes a folder and everything in it, local or on an object store; absent is fine. A local link is removed,
    never what it leads to (a link among a release's staging folders failed the command: rmtree refuses links).
    Whether there was anything to remove."""
    if not is_remote(folder) and os.path.islink(folder):
        os.unlink(folder)
    elif _is_dir(folder):
        shutil.rmtree(folder)
    elif is_remote(folder) and matching(FileSystems.join(folder, "**")):
        # Objects at any depth (one listing of the prefix, as before): looked for one or two levels down, a killed
        # run's staging folder holding only `_staging/RUN/_images/SHA.jpg` and the like was found empty and left there
        FileSystems.delete([folder.rstrip("/") + "/"])
    else:
        return False
    return True


def remove_staging(output: str, keep_planned: bool = False) -> None:
    """Staging areas of runs that were killed (the caller holds the output's lock, so none is live).
    `keep_planned` keeps a folder whose publish began (it holds a plan): a run stopped while publishing
    (Ctrl-C runs its cleanup; a kill does not) has deleted old files already, and only its staged files,
    finished by the next run, make the folder a dataset again."""
    folders = _staging_folders(output) if keep_planned else []
    planned = [folder for folder in folders if FileSystems.exists(FileSystems.join(folder, PUBLISHING))
               and not _published_but_removed(folder, output)]
    if not planned:
        remove_folder(FileSystems.join(output, STAGING))  # the folders and the root that holds them
        return
    for folder in folders:
        if folder not in planned:
            remove_folder(folder)


def _published_but_removed(staging: str, output: str) -> bool:
    """Whether the publish planned in `staging` moved its manifest in (its last move) and only the removal of its
    folder was left, which a stop cut short: finished here (its emptied run folders removed; the caller removes the
    folder). Kept, a release held it for good (no run touches a published release), and verify refused it. The plan
    is read as `finish_interrupted_publish` reads it: never through a link, bounded, no deeper than JSON's parser goes
    (read whole, a plan of gigabytes put there ended a refresh out of memory, brackets nested too deep with a
    RecursionError's traceback); any other is a plan kept."""
    plan = FileSystems.join(staging, PUBLISHING)
    if not is_remote(plan) and os.path.islink(plan):
        return False
    try:
        names = json.loads(read_regular_file(plan, MAX_MANIFEST_BYTES))["files"]
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        return False
    if not isinstance(names, list) or MANIFEST not in names or not all(isinstance(name, str) for name in names):
        return False
    if FileSystems.exists(FileSystems.join(staging, MANIFEST)) or not FileSystems.exists(FileSystems.join(output,
                                                                                                          MANIFEST)):
        return False
    _remove_emptied_folders(output, names)
    return True


def _staging_folders(output: str) -> list[str]:
    """The run folders under OUTPUT/_staging (an object store has only the objects below them)."""
    root = FileSystems.join(output, STAGING)
    if not is_remote(root):
        return sorted(entry.path for entry in os.scandir(root) if entry.is_dir()) if os.path.isdir(root) else []
    prefix = FileSystems.join(root, "")
    below = [path[len(prefix):] for path in matching(FileSystems.join(root, "**")) if path.startswith(prefix)]
    return sorted({FileSystems.join(root, relative.split("/", 1)[0]) for relative in below if "/" in relative})


def staged_runs(output: str) -> dict[str, bool]:
    """Each run folder under OUTPUT/_staging (a run under way, or what a stopped one left) by its name, and whether it
    holds a publish that is not through: its plan (a list of run paths, as `finish_interrupted_publish` takes it) and
    its manifest not yet moved in, so that the next run into OUTPUT carries the plan out, replacing the dataset the
    folder holds now. The plan is read only inside OUTPUT, as a regular file of at most MAX_MANIFEST_BYTES; a link is
    no plan, as for the next run, which never follows one and removes the folder (it was taken for a publish that run
    carries out: verify's problem, exit 1, said the dataset would be replaced). Nothing for a `_staging` or a run
    folder that is a link (a link holds no run's files); an OSError where `_staging` cannot be listed."""
    if not is_remote(output) and os.path.islink(os.path.join(output, STAGING)):
        return {}
    runs = {}
    for folder in _staging_folders(output):
        if not is_remote(folder) and os.path.islink(folder):
            continue
        plan, pending = FileSystems.join(folder, PUBLISHING), False
        if FileSystems.exists(FileSystems.join(folder, MANIFEST)) and FileSystems.exists(plan) and \
                (is_remote(plan) or not os.path.islink(plan)):
            try:
                names = json.loads(read_regular_file(plan, MAX_MANIFEST_BYTES))["files"]
            except (ValueError, KeyError, TypeError, OSError, RecursionError):
                names = None
            pending = isinstance(names, list) and all(isinstance(name, str) and RUN_PATH.fullmatch(name)
                                                      for name in names)
        runs[folder.rstrip("/").rsplit("/", 1)[-1]] = pending
    return runs


def publish(staging: str, output: str) -> list[str]:
    """Replaces the run files in `output` with those staged and removes the staging folder (with the
    images staged for the writers, which are not published): the plan first, so that a publish killed
    half-way is finished by the next run. Returns the published paths relative to `output`."""
    scratch = tuple(FileSystems.join(staging, folder) + "/" for folder in (STAGED_IMAGES, STAGED_PARTS, STAGED_LISTS))
    # Not the temporaries a failed, retried write left (io/files.atomic_file keeps them on an error): published,
    # each was a file no manifest lists, and verify then refused the release.
    staged = [path for path in files_under(staging) if not path.startswith(scratch) and not _is_temporary(path)]
    names = sorted((path[len(staging.rstrip("/")) + 1:] for path in staged), key=lambda name: (name == MANIFEST, name))
    plan = json.dumps({"files": names}).encode("utf-8")
    write_atomically(FileSystems.join(staging, PUBLISHING), lambda handle: handle.write(plan))
    _carry_out(staging, output, names)
    return names


def _carry_out(staging: str, output: str, names: list[str]) -> None:
    """The plan's steps, each safe to repeat after a kill: the old manifest goes first (the folder then
    claims no dataset), then every old run file the new run does not replace, then the staged files
    still in staging move in, the manifest last (a rename replaces a file of the same name)."""
    if FileSystems.exists(FileSystems.join(staging, MANIFEST)):  # the new manifest not moved in yet
        old_manifest = FileSystems.join(output, MANIFEST)
        if FileSystems.exists(old_manifest):
            FileSystems.delete([old_manifest])
    new = set(names)
    prefix = FileSystems.join(output, "")
    old = [path for path in run_files(output) if path[len(prefix):] not in new]
    if old:
        FileSystems.delete(old)
    for name in names:  # the manifest is last in the plan
        source = FileSystems.join(staging, *name.split("/"))
        if not FileSystems.exists(source):
            continue  # moved in before a kill
        destination = FileSystems.join(output, *name.split("/"))
        parent = destination.rsplit("/", 1)[0]
        if not _exists_dir(parent):
            FileSystems.mkdirs(parent)
        FileSystems.rename([source], [destination])
    _remove_emptied_folders(output, names)
    remove_folder(staging)


def _remove_emptied_folders(output: str, names: list[str]) -> None:
    """The run folders of a local `output` that the new run does not write and that its old files left empty (an
    old run's webdataset/ under a run with --formats=parquet): left there, each looked like a format of the dataset
    holding no shard. An object store has no folders."""
    if is_remote(output):
        return
    written = {name.split("/", 1)[0] for name in names if "/" in name}
    for folder in RUN_FOLDERS:
        path = os.path.join(output, folder)
        if folder not in written and os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
            os.rmdir(path)


def finish_interrupted_publish(output: str) -> str | None:
    """Finishes the publish of a run killed while publishing into `output` (the caller holds the
    output's lock, so no live run owns a staging folder); returns that run's id, or None. A staging folder
    without a plan is a run killed before it published: nothing of it is used. Nothing is done in a
    published release (immutable; a run publishes into one never, so a plan there was put there by hand)."""
    if is_published(output):
        return None
    for plan_path in matching(FileSystems.join(output, STAGING, "*", PUBLISHING)):
        staging = plan_path[: -len(PUBLISHING) - 1]
        if not is_remote(plan_path) and os.path.islink(plan_path):
            continue  # a run writes its plan, never a link to one: a file put there otherwise, left to remove_staging
        try:
            # Bounded as verify reads it: a plan of gigabytes put there was read whole, and the run ended out of memory.
            names = json.loads(read_regular_file(plan_path, MAX_MANIFEST_BYTES))["files"]
        except (ValueError, KeyError, TypeError, RecursionError):
            # No JSON, no regular file (a named pipe: read, it was waited on), over the bound, nested past the parser's
            # depth: not a plan this module wrote (it writes plans atomically): left to remove_staging.
            continue
        if not isinstance(names, list) or not all(isinstance(name, str) and RUN_PATH.fullmatch(name) for name in names):
            continue  # only names a run writes: relative, no '..', nothing that could point out of the folder
        _carry_out(staging, output, names)
        return staging.rstrip("/").rsplit("/", 1)[-1]
    return None


_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{32}$")  # io/files.atomic_file's temporary names


def _is_temporary(path: str) -> bool:
    return bool(_TEMPORARY.search(path))


def linked_run_paths(output: str) -> list[str]:
    """The run folders and files of a local `output` that are symbolic links: a run deletes the old run files
    through them and renames its own into them, wherever they lead (a link `review -> ~/thesis` emptied the
    thesis). An object store has no links."""
    if is_remote(output):
        return []
    names = (*RUN_FOLDERS, *RUN_FILES, STAGING)
    return [os.path.join(output, name) for name in names if os.path.islink(os.path.join(output, name))]


def misplaced_run_paths(output: str) -> list[str]:
    """The run folders of a local `output` that are something else than a folder (a file `parquet`), and its run
    files that are something else than a file (a folder `stats.json`), with what a run would need each to be.
    Publishing deleted the old manifest and run files and then failed on one ('File exists'), and so did every
    rerun: the old dataset was gone and no new one could be published. An object store has only files."""
    if is_remote(output):
        return []
    misplaced = []
    for name in (*RUN_FOLDERS, STAGING):
        path = os.path.join(output, name)
        if os.path.lexists(path) and not os.path.isdir(path):
            misplaced.append((path, "folder"))
    for name in RUN_FILES:
        path = os.path.join(output, name)
        if os.path.lexists(path) and not os.path.isfile(path):
            misplaced.append((path, "file"))
    return [f"{path} is a {'file' if wanted == 'folder' else 'folder'}, where a run writes a {wanted}"
            for path, wanted in misplaced]


def _at_and_above(output: str) -> list[str]:
    """`output` (canonical) and every folder above it, nearest first."""
    here = canonical_path(output)
    if is_remote(here):
        scheme, rest = here.split("://", 1)
        parts = rest.split("/")
        return [f"{scheme}://{'/'.join(parts[:end])}" for end in range(len(parts), 0, -1)]
    return [here, *map(str, Path(here).parents)]


def published_folder_above(output: str) -> str | None:
    """A published release at or above `output` (a run into `RELEASE/parquet/more` wrote inside the release);
    None when there is none."""
    return next((folder for folder in _at_and_above(output) if is_published(folder)), None)


def holds_dataset(folder: str) -> bool:
    """A run's dataset is in `folder`: a manifest listing files, or a publish stopped half-way (its plan). Not any
    manifest.json or stats.json: a web extension's project, or a home folder, holds files of those names."""
    manifest = manifest_of(folder)
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), list):
        return True
    return bool(matching(FileSystems.join(folder, STAGING, "*", PUBLISHING)))


def dataset_folder_above(output: str) -> str | None:
    """A folder strictly above `output` that holds a run's dataset (`holds_dataset`), published or not; None
    when there is none. A run into `DATASET/parquet/more` put files there that DATASET's manifest does not list
    (verify refused DATASET), Parquet shards of another schema into the folder `pd.read_parquet(DATASET/parquet)`
    reads, and the next run into DATASET deleted the whole of it with the old run files."""
    return next((folder for folder in _at_and_above(output)[1:] if holds_dataset(folder)), None)


def _exists_dir(folder: str) -> bool:
    return is_remote(folder) or os.path.isdir(folder)
