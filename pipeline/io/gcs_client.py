"""The storage client of Beam's own GCS filesystem, for the few gs:// calls Beam's FileSystems has no word for (a
delete naming the generation read, a listing by folder): built from the options Beam's FileSystems holds, so with
the same credentials, project and headers as every other gs:// call of the process."""

from __future__ import annotations

from typing import Any

from apache_beam.io.filesystems import FileSystems


def storage_client(path: str) -> Any:
    """The google-cloud-storage client Beam reads gs:// `path` with (nothing is asked of the store yet). A client of
    one's own, `storage.Client()`, finds a project or fails: with default credentials naming none (a user's
    application-default login), every run into gs:// was refused as "cannot write to --output", where the launch's
    checks read the bucket."""
    from apache_beam.io.gcp.gcsfilesystem import GCSFileSystem

    filesystem = FileSystems.get_filesystem(path)
    if not isinstance(filesystem, GCSFileSystem):  # what Beam registers for gs://; said, should that ever change
        raise OSError(f"Beam reads gs:// through {type(filesystem).__name__}, not its GCSFileSystem")
    # Beam's GCSFileSystem makes a GcsIO from the options Beam's FileSystems holds, and a GcsIO its storage client
    return filesystem._gcsIO().client


def bucket_and_name(path: str) -> tuple[str, str]:
    """gs://BUCKET/NAME as (BUCKET, NAME)."""
    bucket, _, name = path.removeprefix("gs://").partition("/")
    return bucket, name


def folder_names(folder: str) -> list[str]:
    """The names of the folders directly in gs:// `folder` (what a prefix listing with a '/' delimiter calls
    prefixes), sorted: one page per thousand folders, however many objects they hold (a listing of every object under
    it would read each of a work cache's images)."""
    bucket, prefix = bucket_and_name(folder.rstrip("/") + "/")
    listing = storage_client(folder).list_blobs(bucket, prefix=prefix, delimiter="/")
    for _ in listing:  # the prefixes are gathered as the pages are read
        pass
    return sorted(name[len(prefix):].rstrip("/") for name in listing.prefixes)
