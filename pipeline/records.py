"""The two element types that flow through the job: `Photo` and `Rejection`.

`Photo` is one candidate image. Sources fill its metadata; later stages add bytes, sizes,
hashes and scores with `dataclasses.replace`, so a stage never reshapes a dict that another
stage also reads. Both types have explicit, deterministic coders registered with Beam, so
their encoding never depends on pickle and shuffles are stable across workers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import coders

# Every stage of the funnel, in the order records flow through them: a Rejection's `stage` is one of
# these (stats.json lists the funnel in this order). Each has its module pipeline/stages/<name>.py,
# except "read" (pipeline/sources/) and "blocklist_content" (the blocklist stage run on image hashes).
STAGES = (
    "read", "license", "unique_id", "ledger", "verify_license", "blocklist", "fetch", "image", "blocklist_content",
    "decontaminate", "exact_dedup", "near_dedup", "detect", "owner_cap",
)
BLOCKLIST_CONTENT = "blocklist_content"
# The sources whose rows are Flickr's own (a Photo's `source`): their ids are Flickr's photo ids, and their URLs must
# name the row's photo (`fields.names_this_photo`); a generic table's ids and URLs are its own.
FLICKR_SOURCES = frozenset({"yfcc", "flickr"})


@dataclass(frozen=True)
class Photo:
    """One candidate image and everything known about it so far."""

    # --- identity and provenance -----------------------------------------------------------
    photo_id: str
    source: str = ""  # "yfcc", "flickr", or a generic table's format ("csv", "tsv", "tsv_plain", "parquet", "jsonl")
    source_ref: str = ""  # where the record came from, e.g. "file.tsv:12"
    # --- creator and license (what CC BY attribution needs) --------------------------------
    owner_nsid: str = ""
    owner_name: str = ""
    title: str = ""
    description: str = ""
    tags: str = ""
    machine_tags: str = ""
    date_taken: str = ""
    date_uploaded: str = ""  # ISO 8601, UTC
    capture_device: str = ""
    page_url: str = ""
    download_url: str = ""
    license_name: str = ""  # canonical: "CC BY 2.0", whatever the source called it (flickr.licenses)
    license_url: str = ""  # canonical, https
    license_source_text: str = ""  # the license as the source worded it ("Attribution License")
    license_source_url: str = ""  # and its URL as the source gave it (YFCC: http)
    server_id: str = ""
    farm_id: str = ""
    secret: str = ""
    secret_original: str = ""
    extension: str = ""
    marker: int = 0  # 0 photo, 1 video (YFCC)
    # --- filled by fetch ---------------------------------------------------------------------
    fetched_url: str = ""
    raw: bytes = b""  # downloaded bytes; dropped once the image is normalised
    # --- filled by images (decode, normalise, hash) -----------------------------------------
    original_format: str = ""
    original_width: int = 0
    original_height: int = 0
    image: bytes = b""  # stored JPEG, metadata-free
    width: int = 0
    height: int = 0
    download_sha256: str = ""
    sha256: str = ""  # of the stored bytes
    phash: str = ""  # 64-bit pHash, 16 hex digits
    dhash: str = ""  # 64-bit dHash, 16 hex digits (optional confirmation of near duplicates)
    # --- filled by detect -------------------------------------------------------------------
    scores: tuple[tuple[str, float], ...] = field(default=())
    # --- releases ---------------------------------------------------------------------------
    first_release: str = ""  # the release this image was first published in ("" until written)

    def replace(self, **changes: Any) -> Photo:
        return dataclasses.replace(self, **changes)

    @property
    def ref(self) -> str:
        """Best identifier for messages: the photo id, else where the row came from."""
        return self.photo_id or self.source_ref

    def metadata(self) -> dict[str, Any]:
        """What a release stores but the image, as JSON-ready values (for WebDataset's KEY.json): the Parquet row's
        fields. Where the row was read (`source_ref`, FILE:LINE) made the tar's bytes change with the input files'
        names, order and split, and a carried photo's with its place in the previous release, where the Parquet and
        TFRecord shards were the same."""
        out = {f.name: getattr(self, f.name) for f in _PHOTO_FIELDS if f.name not in NOT_STORED and f.name != "image"}
        out["scores"] = dict(self.scores)
        return out


@dataclass(frozen=True)
class Rejection:
    """The single dead-letter type: why one input record did not make it into the dataset."""

    photo_id: str  # the photo id, or "file:line" when the row had none
    stage: str
    reason: str
    detail: str = ""
    duplicate_of: str = ""
    source_ref: str = ""

    def __post_init__(self) -> None:
        # A detail often quotes what came from outside (an API's error message, a file name): a lone
        # surrogate in it failed the rejections writer, and so the whole job. Escaped, it is still readable.
        for name in ("photo_id", "detail", "duplicate_of", "source_ref"):
            value = getattr(self, name)
            if isinstance(value, str) and not is_utf8_text(value):
                object.__setattr__(self, name, value.encode("utf-8", "backslashreplace").decode("utf-8"))

    @classmethod
    def of(cls, photo: Photo, stage: str, reason: str, detail: str = "", duplicate_of: str = "") -> Rejection:
        return cls(photo.ref, stage, reason, detail, duplicate_of, photo.source_ref)


# The hex spellings every record uses: a perceptual hash (pHash, dHash: 64 bits) and a sha256, lower case.
HASH16 = re.compile(r"[0-9a-f]{16}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# ASCII digits only: str.isdigit() would also pass '²' or Arabic-Indic digits. 20 digits hold any 64-bit id, counted
# once leading zeros are gone ('0009223372036854775807' is photo 9223372036854775807); the text as given is bounded
# too, so a megabyte of zeros is refused by its length, never scanned.
_PHOTO_ID = re.compile(r"[0-9]+")
MAX_PHOTO_ID_DIGITS = 20
MAX_PHOTO_ID_CHARS = 64


def is_utf8_text(value: str) -> bool:
    """Whether `value` encodes as UTF-8: a lone surrogate (JSON's "\ud800", valid JSON) does not, and one in
    any field fails the record coder at the first shuffle, and so the whole job, and every writer."""
    if value.isascii():  # nearly every value: no encoding needed to know
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unusable_name(path: str) -> str:
    """Why a file name that is no UTF-8 text (`is_utf8_text`: decoded with surrogates) cannot name rows, in words for
    the operator: its bytes are no UTF-8 (Latin-1 on a UTF-8 system), or they are and this Python reads file names
    in another encoding (a locale without UTF-8, PYTHONUTF8=0), where renaming the file would not help."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return "the file name is no UTF-8 text; rename the file"
    return (f"the file name is UTF-8, which this Python reads as {sys.getfilesystemencoding()} (a locale without "
            "UTF-8): run it with PYTHONUTF8=1 or LC_ALL=C.UTF-8")


class BadValue(ValueError):
    """A value from outside that no source may pass on; `reason` is the rejection reason, the
    message its detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class BadPhotoId(BadValue):
    """A photo id that is not a Flickr photo number."""


def value_kind(value: object) -> str:
    """What a value read from a table, JSON or an API answer is, in its source's words ("photo id is a float, not a
    number" read as a contradiction, and a JSON object was named by our own class, "_Object")."""
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, (float, decimal.Decimal)):  # a Parquet decimal column reads as Decimal
        return "decimal number"
    if isinstance(value, dict):
        return "JSON object"
    if isinstance(value, (list, tuple)):
        return "list"
    if value is None:
        return "null"
    if isinstance(value, int):  # "holds a int"
        return "whole number"
    if isinstance(value, (bytes, bytearray)):
        return "byte string"
    if isinstance(value, dt.datetime):  # a Parquet timestamp column ("holds a datetime")
        return "date and time"
    if isinstance(value, dt.date):
        return "date"
    return type(value).__name__


def ascii_number(text: str) -> int | None:
    """The number ASCII digits spell, else None: str.isdigit() is also true of digits int() refuses ('²', '①') or reads
    as another script's ('٣'), which sorting an id by `int(id) if id.isdigit()` ended with a ValueError. The ids the
    sources let through are ASCII; a carried row of a resealed release need not be."""
    return int(text) if text.isascii() and text.isdigit() else None


def id_number(photo_id: object) -> int | None:
    """The number a photo id is the one spelling of (ASCII digits, no leading zero, at most 19 of them: it fits an
    unsigned 64-bit integer), else None ('07', '0', 20 digits, '٧', any other text). Release-wide sets of ids and the
    workers' review decisions hold such ids as numbers, 8 bytes each, and any other text beside them as itself."""
    if isinstance(photo_id, str) and 0 < len(photo_id) <= 19 and photo_id[0] != "0" and photo_id.isascii() \
            and photo_id.isdigit():
        return int(photo_id)
    return None


def canonical_photo_id(value: object) -> str:
    """The one spelling of a photo id, whichever source (or list) it came from, else `BadPhotoId`.

    Flickr photo ids are positive integers. An id becomes a tar member name, a file name and a join
    key, so only ASCII digits pass: no '/', '..', '.', sign, space or markup ever reaches a path.
    Leading zeros are stripped, so '007' and '7' are one photo to the repeated-id stage and to the
    blocklist. 0 (and '000') names no photo, since Flickr counts from 1, and is refused. The JSON
    API may give an id as a number: an int is taken at its value, a bool or float never."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value < 10**20:  # checked before str(): a huge int would take long to print, or raise
            raise BadPhotoId("bad_id", "photo id is a number outside 1 .. 10^20")
        return str(value)
    if not isinstance(value, str):
        raise BadPhotoId("bad_id", f"photo id is a {value_kind(value)}, not a whole number")
    text = value
    if not text:
        raise BadPhotoId("missing_id", "empty photo id")
    if len(text) > MAX_PHOTO_ID_CHARS or not _PHOTO_ID.fullmatch(text):
        raise BadPhotoId("bad_id", f"photo id {text[:40]!r} is not a number of at most 20 digits")
    canonical = text.lstrip("0")
    if not canonical:
        raise BadPhotoId("bad_id", f"photo id {text!r} is zero, which names no photo")
    if len(canonical) > MAX_PHOTO_ID_DIGITS:
        raise BadPhotoId("bad_id", f"photo id {text[:40]!r} is not a number of at most 20 digits")
    return canonical


# A Flickr account id (NSID), as Flickr writes one: its number, "@N" and two digits ("12345678@N01").
_NSID = re.compile(r"([0-9]{1,20})@[Nn]([0-9]{2})")


def canonical_owner_id(value: str) -> str:
    """A Flickr account id in Flickr's one spelling: its number without leading zeros, "@N" upper case ("007@n01" is
    "7@N01", one account to the takedown list since it took owners); any other text (an alias, '') as it is. Each
    spelling was an account of its own to the owner cap (three quotas for one photographer) and another owner than
    Flickr's to the licence re-check (`owner_mismatch`)."""
    found = _NSID.fullmatch(value)
    return f"{int(found[1])}@N{found[2]}" if found else value


_PHOTO_FIELDS = dataclasses.fields(Photo)
# The fields a release does not store: the raw download, where the row was read (FILE:LINE, or a carried row's
# place in its release) and the video marker (a kept photo's is always 0).
NOT_STORED = frozenset({"raw", "source_ref", "marker"})
_REJECTION_FIELDS = dataclasses.fields(Rejection)


class _DataclassTupleCoder(coders.Coder):
    """Encodes a flat dataclass as the tuple of its field values with Beam's primitives coder.

    Deterministic as long as every field is a str, int, float, bytes or a tuple of those,
    which is true of both record types.
    """

    record_type: type = object
    fields: tuple = ()

    def __init__(self) -> None:
        self._tuple_coder = coders.FastPrimitivesCoder()

    def encode(self, value: Any) -> bytes:
        return self._tuple_coder.encode(tuple(getattr(value, f.name) for f in self.fields))

    def decode(self, encoded: bytes) -> Any:
        return self.record_type(*self._tuple_coder.decode(encoded))

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self) -> type:
        return self.record_type

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class PhotoCoder(_DataclassTupleCoder):
    record_type = Photo
    fields = _PHOTO_FIELDS


class RejectionCoder(_DataclassTupleCoder):
    record_type = Rejection
    fields = _REJECTION_FIELDS


beam.coders.registry.register_coder(Photo, PhotoCoder)
beam.coders.registry.register_coder(Rejection, RejectionCoder)


def survivor_rank(photo: Photo) -> tuple:
    """Smaller ranks win: more original pixels, earlier upload (unknown dates last), smaller id."""
    pixels = photo.original_width * photo.original_height
    uploaded = photo.date_uploaded or "\uffff"
    number = ascii_number(photo.photo_id)
    return (-pixels, uploaded, float("inf") if number is None else number, photo.photo_id)
