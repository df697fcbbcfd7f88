"""Brute-force oracles the property tests compare the clever code against."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.near_dup.pigeonhole import Node


def confirmed(a: Node, b: Node, dhash_distance: int) -> bool:
    """The optional second opinion: a pHash pair counts only if its dHashes are close as well
    (a missing dHash, e.g. from an older index, cannot veto)."""
    if dhash_distance < 0 or a.dhash is None or b.dhash is None:
        return True
    return (a.dhash ^ b.dhash).bit_count() <= dhash_distance


def is_pair(a: Node, b: Node, distance: int, dhash_distance: int) -> bool:
    """Near duplicates: pHashes within `distance`, dHash-confirmed, never two previous-release images."""
    return ((a.value ^ b.value).bit_count() <= distance and not (a.previous and b.previous)
            and confirmed(a, b, dhash_distance))


def partnered(nodes: Sequence[Node], distance: int, dhash_distance: int) -> set[Node]:
    """Every node with at least one partner, by comparing all pairs."""
    return {a for x, a in enumerate(nodes) for y, b in enumerate(nodes)
            if x != y and is_pair(a, b, distance, dhash_distance)}


def greedy(nodes: Sequence[Node], distance: int, dhash_distance: int) -> dict[Node, tuple[str, int, bool]]:
    """The survivor rule by brute force: best first, each compared with every kept node."""
    kept: list[Node] = []
    dropped = {}
    for node in sorted(nodes, key=lambda n: n.rank):
        close = [(k.rank, k.photo_id, (k.value ^ node.value).bit_count(), k.previous) for k in kept
                 if is_pair(node, k, distance, dhash_distance)]
        if close:
            dropped[node] = min(close)[1:]
        else:
            kept.append(node)
    return dropped


def stored_jpeg_problem(jpeg: bytes) -> str | None:
    """`pipeline.io.stored_jpeg.stored_jpeg_problem` on the whole file at once, as it was written before it read a
    part at a time: segment by segment from the header, then one search for the scan's end."""
    import re

    if not jpeg.startswith(b"\xff\xd8"):
        return "no start of image"
    pos, frames = 2, 0
    while True:
        if len(jpeg) < pos + 4 or jpeg[pos] != 0xFF:
            return f"no segment at byte {pos}"
        code, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        body = jpeg[pos + 4:pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return f"a segment (0xFF{code:02X}) cut short at byte {pos}"
        pos += 2 + length
        if code == 0xDA:
            break
        if code == 0xE0 and len(body) == 14 and body.startswith(b"JFIF\x00") and body[12:14] == b"\x00\x00":
            continue
        if code == 0xC0:
            frames += 1
            if frames > 1:
                return f"a second frame header at byte {pos - 2 - length}"
            continue
        if code not in (0xDB, 0xC4, 0xDD):
            return f"a segment 0xFF{code:02X} ({len(body)} bytes)"
    if not frames:
        return "a scan before any frame header"
    end = re.compile(rb"\xff[^\x00\xd0-\xd7]").search(jpeg, pos)
    if end is None:
        return "no end of image after its scan"
    if jpeg[end.start() + 1] != 0xD9:
        return f"a marker 0xFF{jpeg[end.start() + 1]:02X} after its scan's data"
    if end.end() != len(jpeg):
        return f"{len(jpeg) - end.end()} bytes after the end of the image"
    return None
