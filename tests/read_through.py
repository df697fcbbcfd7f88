"""A file handle read through another, as an object store's is (no descriptor of its own): Arrow reads it through
Python, seeking as it asks. `on_read(count)` is told each read's size, and may raise (a disk failing part way)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO


class ReadThrough(io.RawIOBase):
    def __init__(self, handle: BinaryIO, on_read: Callable[[int], object] = lambda count: None) -> None:
        self.handle, self.on_read = handle, on_read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.handle.read(len(buffer))
        self.on_read(len(data))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.handle.close()
        super().close()
