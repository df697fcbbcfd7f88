"""The EXIF orientation (`io/exif_orientation.py`): what Pillow's getexif() reads, for every TIFF prefix and value type,
and where else it looks (XMP, ImageMagick's PNG text)."""

from __future__ import annotations

import io
import struct
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from pipeline.io.exif_orientation import exif_orientation


def exif_block(order: str, entries: list[tuple[int, int, int, bytes]], prefix: bytes = b"Exif\x00\x00") -> bytes:
    """A TIFF header and one IFD of (tag, type, count, 4 value bytes) entries."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    ifd = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHI", tag, kind, count) + value for tag, kind, count, value in entries)
    return prefix + head + ifd + b"\x00" * 4


def assert_read_as_pillow_reads_it(info: dict) -> None:
    """`exif_orientation` of an image's `info` is the orientation Pillow's getexif() reads from it (None for none)."""
    oracle = Image.new("RGB", (1, 1))
    oracle.info.update(info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings of a malformed tag
        expected = oracle.getexif().get(0x0112)
    assert exif_orientation(info) == (expected if type(expected) is int else None)


@settings(max_examples=200, deadline=None)
@given(order=st.sampled_from("<>"), kind=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 99]),
       count=st.sampled_from([0, 1, 2, 3]), swapped_magic=st.booleans(),
       value=st.integers(0, 9), twice=st.booleans(), others=st.integers(0, 3), prefix=st.sampled_from(
           [b"", b"Exif\x00\x00", b"Exif\x00\x00Exif\x00\x00"]), xmp=st.sampled_from([None, 3, 6]))
def test_exif_orientation_reads_what_pillows_getexif_reads(order, kind, count, swapped_magic, value, twice, others,
                                                           prefix, xmp):
    """Oracle: Image.getexif() on the same info (the orientation as a plain int, else none), for every TIFF prefix
    Pillow reads in an EXIF block and every value type, known to it or not."""
    size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8,
            99: 4}[kind]
    inline = (struct.pack(order + {1: "B", 2: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f"}.get(kind, "I"),
                          value) * count if size * count <= 4 else struct.pack(order + "I", 200)).ljust(4, b"\x00")
    entries = [(0x0100 + k, 3, 1, struct.pack(order + "H", 7).ljust(4, b"\x00")) for k in range(others)]
    entries.append((0x0112, kind, count, inline))
    if twice:
        entries.append((0x0112, 3, 1, struct.pack(order + "H", 8).ljust(4, b"\x00")))
    block = exif_block(order, entries, prefix).ljust(len(prefix) + 200, b"\x00") + struct.pack(order + "I", value) * 4
    if swapped_magic:  # "MM\x2a\x00" and "II\x00\x2a": Pillow reads the byte order from the first two bytes alone
        start = len(prefix) + 2
        block = block[:start] + block[start:start + 2][::-1] + block[start + 2:]
    info = {"exif": block}
    if xmp is not None:
        info["xmp"] = b'<x:xmpmeta><rdf:Description tiff:Orientation="%d"/></x:xmpmeta>' % xmp
    assert_read_as_pillow_reads_it(info)


def test_exif_orientation_without_an_exif_block():
    """XMP (text or bytes) and ImageMagick's PNG text, where getexif() looks too."""
    assert exif_orientation({}) is None
    assert exif_orientation({"XML:com.adobe.xmp": "<x tiff:Orientation>6</x>"}) == 6
    assert exif_orientation({"xmp": b'<x tiff:Orientation="8"/>'}) == 8
    raw = exif_block("<", [(0x0112, 3, 1, b"\x03\x00\x00\x00")], b"")
    text = f"\nexif\n   {len(raw)}\n{raw.hex()}"
    assert exif_orientation({"Raw profile type exif": text}) == 3
    assert exif_orientation({"exif": b"Exif\x00\x00II*\x00"}) is None  # cut short
    big = (b"II+\x00" + struct.pack("<HHQQ", 8, 0, 16, 1) + struct.pack("<HHQ", 0x0112, 3, 1) + b"\x06" + b"\x00" * 15)
    assert exif_orientation({"exif": big}) is None  # BigTIFF, which Pillow raises on: ignored


_KINDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 99]
_OTHER_ENTRY = st.tuples(st.sampled_from([0x010F, 0x8769, 0x8825, 0x9286]), st.sampled_from(_KINDS),
                         st.sampled_from([0, 1, 2, 5, 40, 0xFFFF, 0xFFFFFFFF]),
                         st.sampled_from([8, 30, 60, 150, 1000, 0xFFFFFFF0]))


@settings(max_examples=300, deadline=None)
@given(order=st.sampled_from("<>"), before=st.lists(_OTHER_ENTRY, max_size=3), after=st.lists(_OTHER_ENTRY, max_size=2),
       kind=st.sampled_from([3, 4, 11]), value=st.integers(1, 8), twice=st.booleans(),
       xmp=st.sampled_from([None, 3, 6]))
def test_an_entry_whose_values_run_past_the_block_ends_the_ifd_as_pillow_reads_it(order, before, after, kind, value,
                                                                                   twice, xmp):
    """Pillow stops reading the IFD at the first entry, of any tag, whose values lie past the block's end (its read of
    them fails and ends the IFD's): the orientation after it is none, and one before it stands. Only such an
    orientation entry itself was taken as the end: one of another tag before it was skipped, and a photo whose
    EXIF Pillow reads as unturned (or turned otherwise) was stored turned by the orientation after it."""
    def other(tag, other_kind, count, offset):
        return tag, other_kind, count, struct.pack(order + "I", offset)

    orientation = (0x0112, kind, 1, (struct.pack(order + "f", value) if kind == 11 else
                                     struct.pack(order + {3: "H", 4: "I"}[kind], value)).ljust(4, b"\x00"))
    entries = [*(other(*entry) for entry in before), orientation, *(other(*entry) for entry in after)]
    if twice:
        entries.append((0x0112, 3, 1, struct.pack(order + "H", 9 - value).ljust(4, b"\x00")))
    block = exif_block(order, entries).ljust(6 + 120, b"\x00")
    info = {"exif": block}
    if xmp is not None:
        info["xmp"] = b'<x:xmpmeta><rdf:Description tiff:Orientation="%d"/></x:xmpmeta>' % xmp
    assert_read_as_pillow_reads_it(info)


def test_a_photo_whose_orientation_pillow_never_reaches_is_stored_as_pillow_shows_it():
    """A landscape JPEG whose EXIF holds a Make tag pointing past the block's end, then Orientation 6: Pillow's
    exif_transpose leaves it landscape, and so is it stored (it was stored turned to portrait)."""
    from PIL import ImageOps

    from pipeline.stages.image import ImageConfig, normalise
    from tests.conftest import encode, real_image

    block = exif_block("<", [(0x010F, 2, 40, struct.pack("<I", 900)), (0x0112, 3, 1, b"\x06\x00\x00\x00")])
    raw = encode(real_image("coffee.jpg"), "JPEG", exif=block)  # 600 x 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warning of the tag it cannot read, on opening the file
        with Image.open(io.BytesIO(raw)) as opened:
            shown = ImageOps.exif_transpose(opened)
        stored = normalise(raw, ImageConfig(max_side=4096))
    assert (stored.width, stored.height) == shown.size == (600, 400)
    assert (stored.original_width, stored.original_height) == (600, 400)


def test_exif_orientation_of_xmp_given_as_text_under_the_key_pillow_gives_bytes():
    """A PNG's text chunk named "xmp" comes as text under the key where JPEG and WebP XMP comes as bytes; the bytes
    pattern was searched in it and raised TypeError, which the image stage has no reason for (the photo became an
    internal error). Read as text, as the same XMP under "XML:com.adobe.xmp" is."""
    written = io.BytesIO()
    text = PngImagePlugin.PngInfo()
    text.add_text("xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    Image.new("RGB", (2, 1)).save(written, "PNG", pnginfo=text)
    info = Image.open(io.BytesIO(written.getvalue())).info
    assert isinstance(info["xmp"], str)
    assert exif_orientation(info) == 6
    assert exif_orientation({"xmp": "no orientation here"}) is None
    assert exif_orientation({"XML:com.adobe.xmp": b'<x tiff:Orientation="3"/>'}) == 3
