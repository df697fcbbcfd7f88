"""Where things live in an output folder and under a releases root, whether a folder holds a
published release, and how a finished run is published into its folder.

A run never writes into `--output` directly: it writes into `OUTPUT/_staging/RUN_ID/` and, once
the job has succeeded and its manifest is written, `publish` replaces whatever the folder held
with the staged files (the manifest last). So a dataset folder only ever holds one complete run,
a killed run leaves nothing but its staging folder (removed by the next run), and `--overwrite`
replaces an old dataset only once the new one exists. Every module that names these paths asks
here."""

from __future__ import annotations

import json
import os
import shutil

from apache_beam.io.filesystems import FileSystems

from pipeline.io.files import matching, read_bytes

MANIFEST = "manifest.json"
STATS = "stats.json"
ATTRIBUTION = "ATTRIBUTION.csv"
FORMAT_FOLDERS = ("webdataset", "parquet", "tfrecord")
# Everything a run writes into its --output (folders hold shards); a rerun replaces all of it.
RUN_FOLDERS = (*FORMAT_FOLDERS, "rejections", "near_dup_index", "review", "ledger")
DATASET_CARD = "README.md"  # the Hugging Face dataset card (io/dataset_card.py)
RUN_FILES = (MANIFEST, STATS, ATTRIBUTION, DATASET_CARD)
STAGING = "_staging"
# Inside a staging folder: the run's stored images, by sha256 (io/staged_images.py); never published.
STAGED_IMAGES = "_images"


def release_dir(root: str, name: str) -> str:
    return FileSystems.join(root, "releases", name)


def work_cache(root: str, name: str) -> str:
    return FileSystems.join(root, "work", name, "cache")


def _manifest_of(folder: str) -> dict | None:
    path = FileSystems.join(folder, MANIFEST)
    return json.loads(read_bytes(path)) if FileSystems.exists(path) else None


def is_published(folder: str) -> bool:
    """A run writes manifest.json last; a refresh then adds the release's name: only then is the
    folder a published (immutable) release."""
    manifest = _manifest_of(folder)
    return bool(isinstance(manifest, dict) and manifest.get("release"))


def holds_run(folder: str) -> list[str]:
    """The run markers (manifest, stats) present in `folder`: non-empty when a run finished there."""
    return [name for name in (MANIFEST, STATS) if FileSystems.exists(FileSystems.join(folder, name))]


def published_releases(root: str) -> list[str]:
    """Folders of the published releases under ROOT/releases, oldest first (names sort by time)."""
    folders = [path.rsplit("/", 1)[0] for path in matching(FileSystems.join(root, "releases", "*", MANIFEST))]
    return sorted((f for f in folders if is_published(f)), key=lambda path: path.rsplit("/", 1)[-1])


def run_files(folder: str) -> list[str]:
    """Every file a finished or partial run left in `folder` (not its staging area or lock)."""
    patterns = [FileSystems.join(folder, sub, "*") for sub in RUN_FOLDERS]
    patterns += [FileSystems.join(folder, name) for name in RUN_FILES] + [FileSystems.join(folder, "*.tmp-*")]
    return [path for pattern in patterns for path in matching(pattern)]


def staging_dir(output: str, run_id: str) -> str:
    return FileSystems.join(output, STAGING, run_id)


def _is_dir(path: str) -> bool:
    return "://" not in path and os.path.isdir(path)  # object stores have no directories


def files_under(folder: str) -> list[str]:
    """The files directly in `folder` and one level below (a run's layout), sorted."""
    top = [path for path in matching(FileSystems.join(folder, "*")) if not _is_dir(path)]
    return sorted(top + [path for path in matching(FileSystems.join(folder, "*", "*")) if not _is_dir(path)])


def remove_folder(folder: str) -> None:
    """Deletes a folder and everything in it, local or on an object store; absent is fine."""
    if _is_dir(folder):
        shutil.rmtree(folder)
    elif "://" in folder and matching(FileSystems.join(folder, "*")) + matching(FileSystems.join(folder, "*", "*")):
        FileSystems.delete([folder.rstrip("/") + "/"])


def remove_staging(output: str) -> None:
    """Staging areas of runs that were killed (the caller holds the output's lock, so none is live)."""
    remove_folder(FileSystems.join(output, STAGING))


def publish(staging: str, output: str) -> list[str]:
    """Replaces the run files in `output` with those staged, manifest last, and removes the
    staging folder (with the images staged for the writers, which are not published). Returns the
    published paths relative to `output`."""
    staged = [path for path in files_under(staging)
              if not path.startswith(FileSystems.join(staging, STAGED_IMAGES) + "/")]
    names = [path[len(staging.rstrip("/")) + 1:] for path in staged]
    old = run_files(output)
    if old:
        FileSystems.delete(old)
    order = sorted(range(len(names)), key=lambda i: names[i] == MANIFEST)  # the manifest marks completion
    for i in order:
        destination = FileSystems.join(output, *names[i].split("/"))
        parent = destination.rsplit("/", 1)[0]
        if not _exists_dir(parent):
            FileSystems.mkdirs(parent)
        FileSystems.rename([staged[i]], [destination])
    remove_folder(staging)
    return names


def _exists_dir(folder: str) -> bool:
    return "://" in folder or os.path.isdir(folder)
