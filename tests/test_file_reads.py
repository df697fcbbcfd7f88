"""pipeline/io/file_reads.py: one file's reads, local or on an object store, importing Beam only for an object store's
path (the gs:// reads themselves: tests/test_cloud_storage.py, against a local emulator)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

from pipeline.io.file_reads import is_remote, scheme_of

PATHS = ["gs://bucket/a.json", " gs://bucket/a.json", "GS://b/x", "s3://b/x", "a+b.c-d://x", "1x://y", "./a://b",
         "/abs/a.json", "rel/a.json", "gs:/bucket/a", "gs//x", "", "://x", "gs://", "x:\\\\y", "\tgs://b/x\n"]


def test_a_path_names_a_filesystem_exactly_where_beam_says_it_does():
    from apache_beam.io.filesystems import FileSystems

    assert [scheme_of(path) for path in PATHS] == [FileSystems.get_scheme(path) for path in PATHS]
    assert scheme_of("gs://bucket/a.json") == "gs" and scheme_of("/abs/a.json") is None
    assert [is_remote(path) for path in PATHS] == [FileSystems.get_scheme(path) is not None for path in PATHS]


READ_LOCAL = """
import json, sys
from pipeline.io import file_reads

path, missing = sys.argv[1], sys.argv[2]
with file_reads.open_regular_file(path) as handle:
    opened = handle.read()
try:
    file_reads.read_bytes(missing)
except FileNotFoundError:
    refused = True
print(json.dumps([file_reads.read_bytes(path) == opened, file_reads.read_bytes(path, 4) == opened[:5], refused,
                  file_reads.size_and_kind(path) == (len(opened), ""), file_reads.size_and_kind(sys.argv[3])[1],
                  sorted(name for name in sys.modules if name.split(".")[0] == "apache_beam")]))
"""


def test_a_local_file_is_read_as_stored_without_importing_beam(tmp_path):
    """The detectors' registry and fusion models are read through these: the photo_sets fit scripts imported Beam
    (~3.5 s) before their --help printed. A .gz file is its bytes, not decompressed, as Beam read it."""
    path = tmp_path / "model.json.gz"
    path.write_bytes(gzip.compress(b'{"features": []}' * 100))
    done = subprocess.run([sys.executable, "-c", READ_LOCAL, str(path), str(tmp_path / "gone.json"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [True, True, True, True, "a folder", []], done.stdout


def test_a_local_path_holding_colon_slash_slash_is_still_checked_as_a_regular_file(tmp_path):
    """`open_regular_file` took any path holding "://" for an object store's and skipped the regular-file check: a local
    `DIR/a://b/plan.json` that is a folder or a named pipe was opened as it came (a pipe waits for a writer for ever).
    Local is what Beam says is local (`scheme_of`), as in every other read here."""
    import os

    import pytest

    from pipeline.io.file_reads import open_regular_file

    (tmp_path / "a:" / "b" / "plan.json").mkdir(parents=True)
    os.mkfifo(tmp_path / "a:" / "b" / "pipe.json")
    for name in ("plan.json", "pipe.json"):
        path = f"{tmp_path}/a://b/{name}"
        assert scheme_of(path) is None
        with pytest.raises(ValueError, match="is no regular file"):
            open_regular_file(path)
    (tmp_path / "a:" / "b" / "real.json").write_bytes(b"{}")
    with open_regular_file(f"{tmp_path}/a://b/real.json") as handle:
        assert handle.read() == b"{}"
