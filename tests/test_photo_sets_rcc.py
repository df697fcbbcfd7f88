"""The Qt resource reader, on tiny .rcc files built here (format 3, as gcompris-qt-data ships)."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest

from pipeline.photo_sets.rcc import RccError, member, members

NODE = 22  # format 2+: name offset, flags, then dir (count, first) or file (country, language, data), mtime


def build_rcc(files: dict[str, tuple[bytes, bool]], cycle: bool = False) -> bytes:
    """A format-3 resource holding one directory 'a' with `files` (name -> (bytes, zlib?))."""
    names = b""
    name_offsets = {}
    for name in ["a", *files]:
        name_offsets[name] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
    data = b""
    tree = struct.pack(">IHII", 0, 2, 1, 1) + bytes(8)  # root: one child, index 1
    first_child = 1 if cycle else 2  # a cycle: 'a' lists itself as its child
    tree += struct.pack(">IHII", name_offsets["a"], 2, len(files), first_child) + bytes(8)
    for name, (content, compress) in files.items():
        payload = struct.pack(">I", len(content)) + zlib.compress(content) if compress else content
        tree += struct.pack(">IHHHI", name_offsets[name], 1 if compress else 0, 0, 0, len(data)) + bytes(8)
        data += struct.pack(">I", len(payload)) + payload
    header = 24
    return (b"qres" + struct.pack(">IIIII", 3, header, header + len(tree), header + len(tree) + len(data), 0)
            + tree + data + names)


def test_reads_plain_and_zlib_members():
    blob = build_rcc({"x.jpg": (b"\xff\xd8jpeg bytes" * 50, True), "y.txt": (b"plain", False)})
    assert members(blob) == {"/a/x.jpg": b"\xff\xd8jpeg bytes" * 50, "/a/y.txt": b"plain"}


def test_refuses_what_is_not_a_resource_file():
    with pytest.raises(RccError, match="qres"):
        members(b"PK\x03\x04 a zip")


def test_a_truncated_file_raises_rcc_error_not_index_error():
    blob = build_rcc({"x.jpg": (b"content" * 100, False)})
    with pytest.raises(RccError):
        members(blob[:60])


def test_a_cyclic_tree_is_refused():
    with pytest.raises(RccError, match="cycle"):
        members(build_rcc({"x.jpg": (b"c", False)}, cycle=True))


def test_member_runs_past_the_end():
    blob = bytearray(build_rcc({"x.jpg": (b"content", False)}))
    data_offset = struct.unpack(">I", blob[12:16])[0]
    blob[data_offset:data_offset + 4] = struct.pack(">I", 10_000)
    with pytest.raises(RccError, match="past the end"):
        members(bytes(blob))


def test_member_decompresses_only_the_one_asked_for():
    """Fetching one photograph out of a resource must not inflate the others (a small file may hold a
    large compressed member, or many nodes sharing one)."""
    blob = build_rcc({"bomb.bin": (bytes(50_000_000), True), "x.jpg": (b"photo", True)})
    assert len(blob) < 200_000
    tracemalloc.start()
    try:
        assert member(blob, "/a/x.jpg") == b"photo"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    with pytest.raises(KeyError):
        member(blob, "/a/missing.jpg")


def _deep_long_names(files: int, depth: int = 60) -> bytes:
    """Directories 60 deep all sharing one 65,535-character name, then `files` short-named files."""
    from pipeline.photo_sets import rcc

    long_name = "\u4e00" * 65535
    names = struct.pack(">HI", len(long_name), 0) + long_name.encode("utf-16-be")
    offsets = []
    for i in range(files):
        offsets.append(len(names))
        names += struct.pack(">HI", len(f"{i}.jpg"), 0) + f"{i}.jpg".encode("utf-16-be")
    nodes = [struct.pack(">IHII", 0, 2, 1, d + 1) + bytes(8) for d in range(depth)]
    nodes.append(struct.pack(">IHII", 0, 2, files, depth + 1) + bytes(8))
    nodes += [struct.pack(">IHHHI", offset, 0, 0, 0, 0) + bytes(8) for offset in offsets]
    tree, data = b"".join(nodes), struct.pack(">I", 0)
    return rcc.MAGIC + struct.pack(">IIII", 2, 20, 20 + len(tree), 20 + len(tree) + len(data)) + tree + data + names


def test_paths_longer_than_any_real_resource_holds_are_refused_before_they_take_memory():
    """Each file's path was built whole: 4 million characters each here, and a 145 kB file took 2.4 GB."""
    blob = _deep_long_names(100)
    tracemalloc.start()
    try:
        with pytest.raises(RccError, match="longer than"):
            member(blob, "/photo.jpg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
