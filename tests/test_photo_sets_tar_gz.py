"""pipeline/photo_sets/tar_gz.py: a hostile .tar.gz (a gzip bomb, too many members, a listing that loops back,
a header claiming megabytes, another compression under a .gz name) is refused, quickly; an ordinary one reads; an
old sdist's .tar.bz2 reads under the same caps."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import time
import zlib

import pytest

from pipeline.photo_sets import tar_gz
from pipeline.photo_sets.tar_gz import ArchiveError, open_tar
from tests.test_photo_sets_sdist import MEMBER, PHOTO
from tests.test_photo_sets_sdist import tar_bz2 as make_tar_bz2
from tests.test_photo_sets_sdist import tar_gz as make_tar_gz


def test_a_gzip_bomb_is_refused_before_it_inflates_past_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(tar_gz, "MAX_INFLATED_BYTES", 1 << 20)
    bomb = tmp_path / "sdist.tar.gz"
    bomb.write_bytes(make_tar_gz({"p-1.0/zeros": bytes(4 << 20), MEMBER: PHOTO}))
    assert bomb.stat().st_size < 20_000  # 4 MB of zeros in a few kB
    with pytest.raises(ArchiveError, match="inflates to more than"), open_tar(bomb):
        pass
    # inflated once, into a file that stops at the cap (a chunk over it at most), never the whole 4 MB
    assert (tmp_path / "inflated.tar").stat().st_size <= (1 << 20) + tar_gz._CHUNK
    small = tmp_path / "small.tar.gz"
    small.write_bytes(make_tar_gz({"p-1.0/zeros": bytes(100_000), MEMBER: PHOTO}))
    with open_tar(small) as archive:  # under the cap: read as usual, a member after a long one too
        assert archive.extractfile(archive.getmember(MEMBER)).read() == PHOTO


def test_an_sdist_of_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tar_gz, "MAX_TAR_MEMBERS", 10)
    many = tmp_path / "sdist.tar.gz"
    many.write_bytes(make_tar_gz({f"p-1.0/{n}": b"" for n in range(11)}))
    with pytest.raises(ArchiveError, match="more than 10 members"), open_tar(many):
        pass
    many.write_bytes(make_tar_gz({f"p-1.0/{n}": b"" for n in range(10)}))
    with open_tar(many) as archive:
        assert len(archive.getmembers()) == 10


def test_an_xz_tar_under_a_gz_name_is_not_read_as_one(tmp_path):
    """Only gzip is inflated through the cap: another compression under a .tar.gz name is an error, not a guess."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(PHOTO)
        archive.addfile(info, io.BytesIO(PHOTO))
    path = tmp_path / "sdist.tar.gz"
    path.write_bytes(buffer.getvalue())
    assert lzma.decompress(buffer.getvalue())  # it is a real xz tar
    with pytest.raises(gzip.BadGzipFile), open_tar(path):
        pass


def test_a_tar_whose_listing_loops_back_is_refused_at_once(tmp_path):
    """A GNU header with a negative size sends Python 3.11's tarfile back to an earlier header: A, B, A, B... The
    listing refuses the first member that is not after the one before."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    body = b""

    def header(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        return info.tobuf(tarfile.GNU_FORMAT)
    body += header("p-1.0/A", 1024) + bytes(1024)
    body += header("p-1.0/B", -(1024 + 1024))  # the next header: A again
    body += bytes(1024)
    path = tmp_path / "sdist.tar.gz"
    path.write_bytes(stream.compress(body) + stream.flush())
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    with pytest.raises(ArchiveError, match="out of order"), open_tar(path):
        pass
    assert time.process_time() - started < 5


def test_a_tar_header_claiming_megabytes_is_refused_before_it_is_read(tmp_path):
    """tarfile reads a GNU long name's data whole: a 2 MiB name would be 2 MiB in memory (a GB one, a GB)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("p-1.0/" + "n" * (2 << 20))
        info.size = len(PHOTO)
        archive.addfile(info, io.BytesIO(PHOTO))
    path = tmp_path / "sdist.tar.gz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ArchiveError, match="tar header of more than"), open_tar(path):
        pass
    long_but_fine = "p-1.0/" + "n" * 300 + ".jpg"  # a real long name still reads
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo(long_but_fine)
        info.size = len(PHOTO)
        archive.addfile(info, io.BytesIO(PHOTO))
    path.write_bytes(buffer.getvalue())
    with open_tar(path) as archive:
        assert archive.extractfile(archive.getmember(long_but_fine)).read() == PHOTO


def test_a_tar_bz2_reads_and_a_bzip2_bomb_is_refused_at_the_same_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(tar_gz, "MAX_INFLATED_BYTES", 1 << 20)
    path = tmp_path / "sdist.tar.bz2"
    path.write_bytes(make_tar_bz2({"p-1.0/zeros": bytes(100_000), MEMBER: PHOTO}))
    with open_tar(path) as archive:
        assert archive.extractfile(archive.getmember(MEMBER)).read() == PHOTO
    bomb = tmp_path / "bomb" / "sdist.tar.bz2"
    bomb.parent.mkdir()
    bomb.write_bytes(make_tar_bz2({"p-1.0/zeros": bytes(8 << 20), MEMBER: PHOTO}))
    assert bomb.stat().st_size < 2_000  # 8 MB of zeros in a few hundred bytes
    with pytest.raises(ArchiveError, match="inflates to more than"), open_tar(bomb):
        pass
    assert (bomb.parent / "inflated.tar").stat().st_size <= (1 << 20) + tar_gz._CHUNK


def test_the_compression_is_the_one_the_name_says(tmp_path):
    """A gzip stream named .tar.bz2 is an error, not a guess; a name of no known kind is refused before reading."""
    path = tmp_path / "sdist.tar.bz2"
    path.write_bytes(make_tar_gz({MEMBER: PHOTO}))
    with pytest.raises(OSError, match="Invalid data stream"), open_tar(path):
        pass
    other = tmp_path / "zst" / "sdist.tar.zst"
    other.parent.mkdir()
    other.write_bytes(make_tar_gz({MEMBER: PHOTO}))
    with pytest.raises(ArchiveError, match="is not named as one of"), open_tar(other):
        pass
    assert not (other.parent / "inflated.tar").exists()


def test_inflating_is_bounded_in_time_as_well_as_bytes(tmp_path, monkeypatch):
    """bzip2 inflates slowly (~30 s of CPU at the byte cap): a deadline refuses a tarball still inflating past it."""
    path = tmp_path / "sdist.tar.bz2"
    path.write_bytes(make_tar_bz2({"p-1.0/noise": bytes(range(256)) * 16_000, MEMBER: PHOTO}))  # ~4 chunks
    clock = iter(range(0, 1000, 10))  # each look at the clock 10 s after the one before
    monkeypatch.setattr(tar_gz.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(tar_gz, "INFLATE_DEADLINE_S", 15.0)
    with pytest.raises(ArchiveError, match="took more than 15 s to inflate"), open_tar(path):
        pass
    monkeypatch.setattr(tar_gz, "INFLATE_DEADLINE_S", 1000.0)
    with open_tar(path) as archive:
        assert archive.extractfile(archive.getmember(MEMBER)).read() == PHOTO


@pytest.mark.parametrize("kind", ["gnu sparse 1.0", "old gnu sparse"])
def test_a_sparse_member_is_refused_before_its_map_is_read(tmp_path, kind):
    """A sparse member's map is read 512 bytes at a time while listing, each read under MAX_HEADER_BYTES, into
    Python lists without bound: a 31 kB tarball took 15 s and 920 MB. No package ships a photograph so."""
    raw = io.BytesIO()
    if kind == "gnu sparse 1.0":
        entries = 300_000  # a map of 1.2 MB, past MAX_HEADER_BYTES in 512-byte reads
        mapdata = f"{entries}\n".encode() + b"0\n" * (2 * entries)
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("GNUSparseFile.0/photo.jpg")
            info.size = len(mapdata)
            info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "photo.jpg",
                                "GNU.sparse.realsize": "0"}
            tar.addfile(info, io.BytesIO(mapdata))
    else:  # an old GNU 'S' member whose header says an extension block follows, and each one says so again
        info = tarfile.TarInfo("photo.jpg")
        info.type = tarfile.GNUTYPE_SPARSE
        header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
        header[482] = 1  # isextended
        header[148:156] = b"        "
        header[148:156] = (b"%06o\x00 " % sum(header))
        extension = bytearray(512)
        extension[504] = 1
        raw.write(bytes(header) + bytes(extension) * 5000 + bytes(1024))
    path = tmp_path / "sdist.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(ArchiveError, match="sparse file"), open_tar(path) as archive:
        archive.getmembers()
