"""Where things live in an output folder and under a releases root, and whether a folder holds a
published release. Every module that names these paths asks here."""

from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from pipeline.io.files import matching, read_bytes

MANIFEST = "manifest.json"
STATS = "stats.json"
ATTRIBUTION = "ATTRIBUTION.csv"
FORMAT_FOLDERS = ("webdataset", "parquet", "tfrecord")
# Everything a run writes into its --output (folders hold shards); a rerun replaces all of it.
RUN_FOLDERS = (*FORMAT_FOLDERS, "rejections", "near_dup_index", "review")
RUN_FILES = (MANIFEST, STATS, ATTRIBUTION)


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
    """Every file a finished or partial run left in `folder`."""
    patterns = [FileSystems.join(folder, sub, "*") for sub in RUN_FOLDERS]
    patterns += [FileSystems.join(folder, name) for name in RUN_FILES] + [FileSystems.join(folder, "*.tmp-*")]
    return [path for pattern in patterns for path in matching(pattern)]
