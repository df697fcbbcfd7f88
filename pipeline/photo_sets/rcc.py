"""Reads Qt binary resource files (`.rcc`, formats 1-3): gcompris-qt-data ships its photographs
inside them. Ported from the labeller's extractor, with bounds checks: the bytes come from a
downloaded package, so every offset is checked before use and a bad file raises `RccError`
instead of reading past the end or recursing without end.

Layout (qtbase/src/tools/rcc/rcc.cpp): a 'qres' header with the format version and the offsets of
the tree, data and names sections. Tree nodes are 14 bytes (format 1) or 22 (format 2+: a
modification time follows). A node is a directory (flag 2: child count, first child index) or a
file (flags 1 = zlib, 4 = zstd; then the offset of its length-prefixed data).
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"qres"
FLAG_COMPRESSED = 1
FLAG_DIRECTORY = 2
FLAG_COMPRESSED_ZSTD = 4
MAX_MEMBER_BYTES = 200_000_000  # a decompression bomb stops here
MAX_DEPTH = 64
# A path inside a resource ('/images/animals/cat.jpg'): directories sharing one 65,535-character name 64 deep gave
# each file a 4-million-character path, and a 145 kB file 2.4 GB of paths.
MAX_PATH_CHARS = 1024


class RccError(ValueError):
    """The file is not a Qt resource file this reader understands."""


def _read(blob: bytes, offset: int, fmt: str) -> tuple:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(blob):
        raise RccError(f"offset {offset} is outside the file ({len(blob)} bytes)")
    return struct.unpack_from(fmt, blob, offset)


def _name(blob: bytes, names: int, offset: int) -> str:
    (length,) = _read(blob, names + offset, ">H")
    start = names + offset + 6  # length (2), hash (4), then UTF-16 big-endian
    if start + 2 * length > len(blob):
        raise RccError("a name runs past the end of the file")
    return blob[start:start + 2 * length].decode("utf-16-be")


def _decompress(payload: bytes, flags: int) -> bytes:
    if flags & FLAG_COMPRESSED:
        # 4 bytes of uncompressed length (big-endian), then a zlib stream.
        inflater = zlib.decompressobj()
        data = inflater.decompress(payload[4:], MAX_MEMBER_BYTES)
        if inflater.unconsumed_tail:
            raise RccError("a member inflates past the size limit")
        return data
    if flags & FLAG_COMPRESSED_ZSTD:
        try:
            import zstandard
        except ImportError as error:  # not a dependency: no labelled rcc member uses zstd
            raise RccError("a zstd-compressed member needs the 'zstandard' package") from error
        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_MEMBER_BYTES)
    return payload


def _index(blob: bytes) -> dict[str, tuple[int, int, int]]:
    """Every file in the resource, by its path inside ('/dir/name.jpg'): (start, size, flags) of its
    stored bytes, nothing decompressed yet."""
    if blob[:4] != MAGIC:
        raise RccError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = _read(blob, 4, ">IIII")
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc format version {version}")
    node_size = 14 if version == 1 else 22
    out: dict[str, tuple[int, int, int]] = {}
    visited: set[int] = set()

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH or index in visited:
            raise RccError("the resource tree has a cycle or is too deep")
        visited.add(index)
        node = tree + index * node_size
        name_offset, flags = _read(blob, node, ">IH")
        name = _name(blob, names, name_offset) if index else ""
        if len(prefix) + len(name) > MAX_PATH_CHARS:
            raise RccError(f"a path inside the resource is longer than {MAX_PATH_CHARS} characters")
        if flags & FLAG_DIRECTORY:
            count, first = _read(blob, node + 6, ">II")
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "/", depth + 1)
            return
        (data_offset,) = _read(blob, node + 10, ">I")
        (size,) = _read(blob, data + data_offset, ">I")
        start = data + data_offset + 4
        if start + size > len(blob):
            raise RccError(f"member {prefix}{name} runs past the end of the file")
        out[prefix + name] = (start, size, flags)

    walk(0, "", 0)
    return out


def member(blob: bytes, path: str) -> bytes:
    """One file of the resource, the only one decompressed (many nodes may share one payload: inflating
    every member to return one could multiply a small file's bytes without bound); KeyError if absent."""
    start, size, flags = _index(blob)[path]
    return _decompress(blob[start:start + size], flags)


def members(blob: bytes) -> dict[str, bytes]:
    """Every file in the resource, by its path inside ('/dir/name.jpg'), decompressed."""
    return {path: _decompress(blob[start:start + size], flags)
            for path, (start, size, flags) in _index(blob).items()}
