"""A local file read only if it is a regular one, without waiting, at most so many bytes (io/regular_files.py)."""

from __future__ import annotations

import io
import os
import socket
import stat

import pytest

from pipeline.io.regular_files import kind_of, open_local_regular, read_at_most


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


def test_a_kind_is_named_in_words(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert kind_of(os.stat(tmp_path).st_mode) == "a folder"
    assert kind_of(os.stat(tmp_path / "pipe").st_mode) == "a named pipe"
    assert kind_of(os.stat("/dev/null").st_mode) == "a device"
    assert kind_of(stat.S_IFSOCK) == "a socket"
