"""A local file read only if it is a regular one, without waiting, at most so many bytes (io/regular_files.py)."""

from __future__ import annotations

import io
import os
import socket
import stat

import pytest

from pipeline.io.regular_files import kind_of, open_local_regular, read_at_most, size_and_sha256_of


def test_a_regular_file_is_opened_and_anything_else_is_refused_without_waiting(tmp_path):
    path = tmp_path / "plan.json"
    path.write_bytes(b"{}")
    with open_local_regular(str(path)) as handle:
        assert handle.read() == b"{}"
    os.mkfifo(tmp_path / "pipe")  # opened for reading with no writer: a plain open waits for one for good
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "socket"))
        for name in ("pipe", "socket"):
            with pytest.raises(ValueError, match="is no regular file"):
                open_local_regular(str(tmp_path / name))
    with pytest.raises(ValueError, match="is no regular file"):
        open_local_regular(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        open_local_regular(str(tmp_path / "missing"))


def test_at_most_so_many_bytes_are_read_a_mib_at_a_time():
    class Counting(io.BytesIO):
        largest = 0

        def read(self, size=-1):
            Counting.largest = max(Counting.largest, size)
            return super().read(size)

    data = os.urandom(3 << 20)
    assert read_at_most(Counting(data), len(data) + 1) == data and Counting.largest == 1 << 20
    assert read_at_most(Counting(data), 5) == data[:5]


def test_a_handle_is_hashed_from_where_it_is_a_chunk_at_a_time_and_no_further_than_asked(tmp_path):
    """What `files.size_and_sha256` (a file's size and sha256 against its manifest) and `file_pins` (a file's bytes
    against those verify read, no further than their size and one byte) hash with."""
    import hashlib

    from pipeline.io.files import size_and_sha256

    reads = []

    class Counting(io.BytesIO):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    data = os.urandom((3 << 20) + 7)
    assert size_and_sha256_of(Counting(data)) == (len(data), hashlib.sha256(data).hexdigest())
    assert max(reads) == 1 << 20
    handle = Counting(data)
    handle.seek(5)
    most = (1 << 20) + 3
    assert size_and_sha256_of(handle, most, chunk=1 << 19) == (most, hashlib.sha256(data[5:5 + most]).hexdigest())
    assert handle.tell() == (1 << 20) + 8
    assert size_and_sha256_of(Counting(data[:4]), 10) == (4, hashlib.sha256(data[:4]).hexdigest())
    (tmp_path / "a").write_bytes(data)
    assert size_and_sha256(str(tmp_path / "a"), chunk=1000) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_kind_is_named_in_words(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert kind_of(os.stat(tmp_path).st_mode) == "a folder"
    assert kind_of(os.stat(tmp_path / "pipe").st_mode) == "a named pipe"
    assert kind_of(os.stat("/dev/null").st_mode) == "a device"
    assert kind_of(stat.S_IFSOCK) == "a socket"
