import bz2
import gzip
import json
import re
import string

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.cli import run
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.sources import input_files
from pipeline.sources.table_row import parse_row, table_layout
from pipeline.stages.blocklist import (
    CONTENT_KINDS,
    METADATA_KINDS,
    Blocklist,
    Matcher,
    parse_blocklist,
    parse_blocklists,
    read_blocklists,
)
from pipeline.stages.image import ImageConfig, normalise
from tests.conftest import FAST, local_pipeline, photo, real_jpeg

LISTED_SHA = "ab" * 32
LIST = """# takedowns, 2026-11
photo_id 42
url https://www.flickr.com/photos/x/43/
sha256 ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB   # case does not matter
phash 00000000000000ff 2
phash ffffffffffffffff
"""


def test_parse_and_match_every_kind():
    entries = parse_blocklist(LIST, "takedowns.txt", default_distance=4)
    assert [(e.kind, e.distance, e.source) for e in entries][-2:] == [("phash", 2, "takedowns.txt:5"),
                                                                      ("phash", 4, "takedowns.txt:6")]
    everything = Matcher(entries, METADATA_KINDS + CONTENT_KINDS)
    assert everything.match(photo("42")).source == "takedowns.txt:2"
    assert everything.match(photo("43", page_url="https://www.flickr.com/photos/x/43/")).kind == "url"
    assert everything.match(photo("44", download_sha256=LISTED_SHA)).kind == "sha256"
    assert everything.match(photo("45", phash="00000000000000fc")).value == "00000000000000ff"  # distance 2
    assert everything.match(photo("46", phash="00000000000000f0")) is None  # distance 4 > 2
    assert everything.match(photo("47", phash="0fffffffffffffff")).value == "ffffffffffffffff"  # distance 4
    assert everything.match(photo("48", phash="0123456789abcdef")) is None
    metadata_only = Matcher(entries, METADATA_KINDS)
    assert metadata_only.match(photo("44", download_sha256=LISTED_SHA)) is None


def test_a_carried_row_is_matched_by_its_stored_images_own_phash_when_asked_to_rehash():
    """A carried row states the pHash the previous release wrote; `rehash` looks up its stored image's own pHash too, so
    a listed image is kept out even where the row's stated hash is not the image's (a row edited, or written by an
    older hash). Without the rehash the stated hash alone was looked up and the listed image stayed published."""
    stored = normalise(real_jpeg("coffee.jpg"), ImageConfig(max_side=256))
    entries = parse_blocklist(f"phash {stored.phash} 0\n", "t.txt", 0)
    matcher = Matcher(entries, CONTENT_KINDS)
    carried = photo("9", phash=f"{int(stored.phash, 16) ^ 0xFFFF:016x}", image=stored.jpeg)
    assert matcher.match(carried) is None  # its stated hash is 16 bits away
    assert matcher.match(carried, rehash=True).source == "t.txt:1"


def test_an_owner_takedown_keeps_out_every_photo_of_that_account():
    """A photographer asking that none of their photos be used: the list named photos one by one (photo_id, url,
    sha256, phash), and an owner line was refused at launch, so a new upload of theirs entered the next release.
    `owner NSID` matches the account however the id is written (leading zeros, "@n"), never another account."""
    entries = parse_blocklist("owner 12345678@N01   # asked 2026-12-04\nowner 0099@n02\n", "t.txt", 4)
    matcher = Matcher(entries, METADATA_KINDS)
    assert matcher.match(photo("1", owner_nsid="12345678@N01")).source == "t.txt:1"
    assert matcher.match(photo("2", owner_nsid="99@N02")).source == "t.txt:2"
    assert matcher.match(photo("3", owner_nsid="012345678@n01")).source == "t.txt:1"
    for other in ("12345678@N02", "1234567@N01", "123456780@N01", "", "12345678"):
        assert matcher.match(photo("4", owner_nsid=other)) is None, other
    assert Matcher(entries, CONTENT_KINDS).match(photo("1", owner_nsid="12345678@N01")) is None


@pytest.mark.parametrize("page", ["https://www.flickr.com/photos/12345678@N01/5/", "flickr.com/photos/012345678@n01/5",
                                  "http://m.flickr.com/photos/12345678%40N01/5/in/album-1/"])
def test_an_owner_takedown_keeps_out_a_row_whose_flickr_page_names_that_account(page):
    """A table's row has no owner id, only its page: `owner 12345678@N01` kept out none of that account's photos a
    table listed by their Flickr pages (and a row whose page named another owner than the row, not its page's)."""
    matcher = Matcher(parse_blocklist("owner 12345678@N01\n", "t.txt", 4), METADATA_KINDS)
    assert matcher.match(photo("5", source="csv", owner_nsid="", page_url=page)).source == "t.txt:1"
    assert matcher.match(photo("5", owner_nsid="9@N01", page_url=page)).source == "t.txt:1"
    for other in ("https://www.flickr.com/photos/12345678@N02/5/", "https://www.flickr.com/photos/someone/5/",
                  "https://example.com/photos/12345678@N01/5/", "https://www.flickr.com/people/12345678@N01/"):
        assert matcher.match(photo("5", source="csv", owner_nsid="", page_url=other)) is None, other


@pytest.mark.parametrize("credited", ["12345678@N01", "012345678@n01", " 12345678@N01 "])
def test_an_owner_takedown_keeps_out_a_table_row_crediting_that_account_by_its_id(credited):
    """A table's rows have no owner id: its `owner` column is the creator ATTRIBUTION.csv names, and a table made from
    Flickr's search answers holds there the account's id (the answer's `owner`). `owner 12345678@N01` kept out none of
    the rows crediting that id when they named no Flickr page (a static URL names no account). A row of Flickr's own
    (YFCC, the API, a carried row) is matched by its owner id alone: its owner name is a screen name."""
    layout = table_layout("csv")
    row = {"id": "5", "url": "https://live.staticflickr.com/65535/5_abcdef_z.jpg", "owner": credited,
           "license": "CC BY 4.0"}
    table_photo = parse_row(row, "t.csv:2", layout)
    assert table_photo.owner_nsid == "" and table_photo.page_url == ""
    matcher = Matcher(parse_blocklist("owner 12345678@N01\n", "t.txt", 4), METADATA_KINDS)
    assert matcher.match(table_photo).source == "t.txt:1"
    for other in ("12345678@N02", "1234567@N01", "someone 12345678@N01", "12345678"):
        assert matcher.match(parse_row({**row, "owner": other}, "t.csv:3", layout)) is None, other
    assert matcher.match(photo("6", owner_nsid="9@N01", owner_name="12345678@N01")) is None


@pytest.mark.parametrize("bad", ["colour 12", "photo_id", "phash xyz", "owner someone", "owner 12345678@N01 x",
                                 "owner ../12@N01", "owner 12@N1", "owner @N01"])
def test_malformed_list_fails_at_start(tmp_path, bad):
    path = tmp_path / "bad.txt"
    path.write_text(bad + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        Blocklist([str(path)], 4, METADATA_KINDS)


def test_stage_rejects_with_list_and_entry(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(LIST + "owner 5@N01\n")
    with local_pipeline() as p:
        photos = [photo("42"), photo("7"), photo("8", owner_nsid="5@N01")]
        out = p | beam.Create(photos) | Blocklist([str(path)], 4, METADATA_KINDS)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["7"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail)),
                    equal_to([("42", "blocklist", "blocklisted", "list.txt:2 photo_id 42"),
                              ("8", "blocklist", "blocklisted", "list.txt:7 owner 5@N01")]), label="rejected")


def test_a_takedown_url_s_user_info_and_query_are_masked_in_the_published_rejection(tmp_path):
    """The rejection of a photo a `url` entry took down quoted the entry as the list wrote it: a URL holding user info
    (a password) or a query string (a signed URL's token) was published with the rejections, whole (a 5,000-character
    entry, 5,000 characters each photo), where a fetch's rejection masks both. The list's line still names the entry."""
    path = tmp_path / "list.txt"
    signed = "https://cdn.example.com/a.jpg?X-Amz-Signature=0123456789abcdef"
    path.write_text(f"url https://editor:hunter2@cdn.example.com/b.jpg\nurl {signed}\n"
                    f"url https://cdn.example.com/{'c' * 5000}.jpg\n")
    photos = [photo("1", download_url="https://cdn.example.com/b.jpg"), photo("2", download_url=signed),
              photo("3", download_url=f"https://cdn.example.com/{'c' * 5000}.jpg")]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | Blocklist([str(path)], 4, METADATA_KINDS)
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.detail[:len("list.txt:1 url https://")],
                                                       "hunter2" in r.detail, "0123456789abcdef" in r.detail,
                                                       len(r.detail) <= 250)),
                    equal_to([("1", "list.txt:1 url https://", False, False, True),
                              ("2", "list.txt:2 url https://", False, False, True),
                              ("3", "list.txt:3 url https://", False, False, True)]))


@pytest.mark.parametrize("edited", ["photo_id 7\n", "photo_id 42\nphoto_id 4 2\n"])
def test_the_list_checked_at_launch_is_the_one_applied_whatever_happens_to_the_file_later(tmp_path, edited):
    """The workers read each list again in their setup: a list edited while the job ran (here: replaced, and
    saved with an entry half-typed) was applied as it then was: photo 42, listed at launch, was kept, and an entry
    that cannot be understood failed the whole job in a worker, where launch would have refused it."""
    path = tmp_path / "takedowns.txt"
    path.write_text("photo_id 42\n")
    with local_pipeline() as p:
        stage = Blocklist([str(path)], 4, METADATA_KINDS)
        path.write_text(edited)
        out = p | beam.Create([photo("42"), photo("7")]) | stage
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["7"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: r.detail), equal_to(["takedowns.txt:1 photo_id 42"]),
                    label="rejected")


def test_job_never_fetches_a_taken_down_photo_and_drops_listed_content(tmp_path, monkeypatch):
    """... and reads the list once for all its Blocklist stages (each read it: a list saved between the reads was
    applied in two versions)."""
    from pipeline.stages import blocklist

    chelsea = normalise(real_jpeg("chelsea.jpg"), ImageConfig()).phash
    (tmp_path / "takedowns.txt").write_text(f"photo_id 1005\nphash {chelsea} 0\n")
    opened: list[str] = []
    real_open = blocklist.FileSystems.open
    monkeypatch.setattr(blocklist.FileSystems, "open",
                        lambda path, *args, **kwargs: opened.append(path) or real_open(path, *args, **kwargs))
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                     f"--blocklist={tmp_path / 'takedowns.txt'}", *FAST])
        assert server.hits["/1/1005_abcdef0123.jpg"] == 0
    assert stats["accounted"]
    assert stats["rejections_by_stage"]["blocklist"] == {"blocklisted": 1}
    # chelsea (1003) and its byte-identical re-upload (1011) both match the listed pHash
    assert stats["rejections_by_stage"]["blocklist_content"] == {"blocklisted": 2}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["options"]["blocklist"].endswith(".txt")
    assert opened.count(str(tmp_path / "takedowns.txt")) == 1, opened
    assert not (tmp_path / "out" / "_lists").exists()  # the copy the workers read is never published


def test_a_takedown_naming_the_url_an_image_was_served_from_keeps_it_out_of_the_first_release(tmp_path):
    """The URL after redirects (`fetched_url`) is known only after fetching, and URL entries were looked up only
    before: a takedown naming it let the photo into the release, and only the next refresh (checking the carried
    row, which has it) took it out."""
    from pipeline.fixtures.static_server import image, redirect

    with StaticServer() as server:
        server.add("/cdn/b.jpg", image(real_jpeg("chelsea.jpg")))
        moved = server.add("/a.jpg", redirect(server.url("/cdn/b.jpg")))
        plain = server.add("/c.jpg", image(real_jpeg("coffee.jpg")))
        (tmp_path / "rows.csv").write_text(f"photo_id,photo_url,licence\n1,{moved},CC BY 4.0\n2,{plain},CC BY 4.0\n")
        (tmp_path / "takedowns.txt").write_text(f"# served from\nurl {server.url('/cdn/b.jpg')}\n")
        stats = run([f"--input={tmp_path / 'rows.csv'}", "--input_format=csv",
                     "--columns=id=photo_id,url=photo_url,license=licence", f"--output={tmp_path / 'out'}",
                     f"--allowed_hosts={server.host}", f"--blocklist={tmp_path / 'takedowns.txt'}", *FAST])
    assert stats["accounted"] and stats["kept"] == 1
    assert stats["rejections_by_stage"]["blocklist_content"] == {"blocklisted": 1}

_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # Flickr's short-URL alphabet


def _flic_kr(photo_id: int) -> str:
    digits = ""
    while photo_id:
        photo_id, rest = divmod(photo_id, 58)
        digits = _BASE58[rest] + digits
    return f"https://flic.kr/p/{digits}"


@pytest.mark.parametrize(("listed", "listed_photo"), [
    # every spelling of one page URL is that URL
    ("url https://www.flickr.com/photos/x/43/", photo("1", page_url="http://www.flickr.com/photos/x/43/")),
    ("url https://www.flickr.com/photos/x/43/", photo("1", page_url="https://flickr.com/photos/x/43")),
    ("url http://flickr.com/photos/x/43", photo("1", page_url="HTTPS://WWW.FLICKR.COM/photos/x/43/?ref=s#c")),
    # Flickr page and static URLs name the photo, whoever's alias or whichever size is listed
    ("url https://www.flickr.com/photos/someone/12345/", photo("12345")),
    ("url https://www.flickr.com/photos/12345678@N01/12345/in/album-1/", photo("12345")),
    ("url https://m.flickr.com/photos/someone/12345", photo("12345")),
    ("url https://live.staticflickr.com/65535/12345_abcdef_b.jpg", photo("12345")),
    ("url http://farm1.staticflickr.com/1/12345_abcdef.jpg?zz=1", photo("12345")),
    ("url https://farm3.static.flickr.com/2/12345_abcdef_o.png", photo("12345")),
    ("url www.flickr.com/photos/someone/12345/", photo("12345")),
    (f"url {_flic_kr(12345)}", photo("12345")),
    (f"url {_flic_kr(53412345678)}", photo("53412345678")),
    ("url https://www.flickr.com/photos/someone/12345/",
     photo("9", download_url="https://live.staticflickr.com/1/12345_ab_z.jpg")),
    # ids in any spelling
    ("photo_id 0042", photo("42")),
    ("photo_id 42", photo("042")),
    # a 19-digit id zero-padded past 20 characters: the same photo in a URL as in a row
    ("photo_id 0009223372036854775807", photo("9223372036854775807")),
    ("url https://www.flickr.com/photos/x/0009223372036854775807/", photo("9223372036854775807")),
    ("url https://live.staticflickr.com/65535/0009223372036854775807_ab_b.jpg", photo("9223372036854775807")),
    # other hosts: scheme, host case, www. and a trailing slash do not matter
    ("url https://mirror.example.com/img/1.jpg", photo("1", download_url="HTTP://Mirror.Example.COM/img/1.jpg")),
    ("url https://www.example.com/a/", photo("1", fetched_url="https://example.com/a")),
])
def test_takedowns_match_every_spelling_of_the_photo(listed, listed_photo):
    matcher = Matcher(parse_blocklist(listed + "\n", "t.txt", 4), METADATA_KINDS)
    entry = matcher.match(listed_photo)
    assert entry is not None and entry.source == "t.txt:1", (listed, listed_photo)


@pytest.mark.parametrize(("listed", "other"), [
    ("url https://www.flickr.com/photos/x/43/", photo("44", page_url="https://www.flickr.com/photos/x/44/")),
    ("url https://live.staticflickr.com/65535/12345_abcdef_b.jpg", photo("1234")),
    ("url https://example.com/view?id=5", photo("1", download_url="https://example.com/view?id=6")),
    ("url https://example.com/img/1.jpg", photo("1", download_url="https://example.com/img/1.jpg/x")),
    ("url https://evil.example/photos/x/43/", photo("43")),  # not Flickr: no photo id in it
    ("photo_id 42", photo("420")),
])
def test_takedowns_do_not_match_other_photos(listed, other):
    assert Matcher(parse_blocklist(listed + "\n", "t.txt", 4), METADATA_KINDS).match(other) is None


@pytest.mark.parametrize("bad", [
    "phash 0f1e2d3c4b5a6978 99", "phash 0f1e2d3c4b5a6978 -1", "phash 0f1e2d3c4b5a6978 x", "phash 0f1e2d3c4b5a6978 2 3",
    "photo_id abc", "photo_id ../../x", "photo_id 0", "photo_id 42 43", "photo_id 1.5",
    "url notaurl", "url ftp://example.com/x", "url https://", "url https://flic.kr/p/0OIl", "url a b",
    "sha256 xyz", "sha256 " + "a" * 65, "sha256 abcdef", "garbage", "PHOTO-ID 42",
    # Flickr URLs that name no photo would block nothing: an album, a user page, a tag, a bad short URL
    "url https://www.flickr.com/photos/x/sets/43/", "url https://www.flickr.com/photos/x/albums/43",
    "url https://www.flickr.com/photos/x/", "url https://www.flickr.com/photos/tags/43",
    "url https://live.staticflickr.com/65535/buddyicon.jpg", "url https://flic.kr/s/aHsk",
])
def test_every_entry_that_cannot_be_understood_fails_at_start_naming_file_and_line(tmp_path, bad):
    path = tmp_path / "bad.txt"
    path.write_text("photo_id 1\n# fine so far\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:3"):
        Blocklist([str(path)], 4, METADATA_KINDS)


def test_a_compressed_list_cut_short_fails_at_launch_and_never_lists_a_photo_it_does_not_name(tmp_path):
    """A list fetched as .gz or .bz2 (a hash list from a safety organisation) whose download was cut short was read by
    Beam's lenient decompressor as far as it went, without a word: the entries after the cut were never applied, and the
    cut one was read as another (`photo_id 4242` cut to `photo_id 42`: photo 42, which nobody listed, taken down)."""
    text = b"photo_id 7\nphoto_id 4242\n"
    stored = gzip.compress(text, compresslevel=0)  # stored as it is: the cut lands on a chosen byte of the text
    cut = tmp_path / "takedowns.txt.gz"
    cut.write_bytes(stored[:stored.index(b"photo_id 4242") + len(b"photo_id 42")])
    whole = tmp_path / "whole.txt.bz2"
    whole.write_bytes(bz2.compress(text))
    cut_bz2 = tmp_path / "takedowns.txt.bz2"
    cut_bz2.write_bytes(bz2.compress(text * 1000)[:-40])
    for path in (cut, cut_bz2):
        with pytest.raises(ValueError, match=rf"{path.name}: cannot be read: EOFError"):
            Blocklist([str(path)], 4, METADATA_KINDS)
    gzipped = tmp_path / "more.txt.gz"
    gzipped.write_bytes(gzip.compress(b"photo_id 8\n"))
    texts = read_blocklists([str(whole), str(gzipped)])  # whole compressed lists are read as before
    assert [entry.value for entry in parse_blocklists(texts, 4)] == ["7", "4242", "8"]


def test_a_compressed_list_inflating_past_the_inputs_bound_fails_at_launch_unread(tmp_path, monkeypatch):
    """A .gz list of one line repeated was inflated whole into the launcher's memory (10 MB of .bz2 is terabytes);
    it is bounded as an input file is (`input_files.inflation_limit`: 64 times its size, 256 MiB at least)."""
    monkeypatch.setattr(input_files, "INFLATION_FLOOR", 1 << 20)
    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b"photo_id 7\n" * (2 << 20)))
    with pytest.raises(ValueError, match=r"bomb\.txt\.gz: cannot be read: .*a compression bomb"):
        read_blocklists([str(bomb)])


def test_a_compressed_list_whose_suffix_is_in_upper_case_is_read_as_the_lower_case_suffix_says(tmp_path):
    """`TAKEDOWNS.TXT.GZ` (a name a tool upper-cased) was refused as compressed another way: the run did not start.
    It is read as `.gz` is, checked to its end."""
    (tmp_path / "a.TXT.GZ").write_bytes(gzip.compress(b"photo_id 7\n"))
    (tmp_path / "b.txt.Bz2").write_bytes(bz2.compress(b"photo_id 8\n"))
    texts = read_blocklists([str(tmp_path / "a.TXT.GZ"), str(tmp_path / "b.txt.Bz2")])
    assert [(entry.source, entry.value) for entry in parse_blocklists(texts, 4)] == [("a.TXT.GZ:1", "7"),
                                                                                   ("b.txt.Bz2:1", "8")]
    (tmp_path / "cut.TXT.GZ").write_bytes(gzip.compress(b"photo_id 7\nphoto_id 4242\n")[:-12])
    with pytest.raises(ValueError, match=r"cut\.TXT\.GZ: cannot be read: EOFError"):
        read_blocklists([str(tmp_path / "cut.TXT.GZ")])


@pytest.mark.parametrize("name", ["takedowns.txt.xz", "takedowns.txt.zst", "takedowns.txt.XZ"])
def test_a_list_compressed_another_way_is_refused_naming_the_ways_it_is_read(tmp_path, name):
    """Beam decompresses a name ending in any of its suffixes, as far as the data goes: a list cut short there gave
    the entries before the cut unsaid. A list is read plain, .gz or .bz2, each checked to its end."""
    path = tmp_path / name
    path.write_bytes(b"photo_id 7\n")
    with pytest.raises(ValueError, match=rf"{name}: .*plain, \.gz or \.bz2"):
        read_blocklists([str(path)])


@pytest.mark.parametrize("page", ["https://www.flickr.com/photos/012345678@n01/", "flickr.com/people/12345678@N01",
                                  "https://www.flickr.com/photos/12345678%40N01"])
def test_an_accounts_page_given_as_a_takedown_says_the_owner_line_to_write(page):
    """A photographer's takedown pasted as their photostream or profile URL was refused with "list the photos' ids":
    listed one by one, their later uploads entered the next release (the `owner` line keeps out every one)."""
    with pytest.raises(ValueError, match=r"t\.txt:1: .*'owner 12345678@N01' keeps out every photo of the account"):
        parse_blocklist(f"url {page}\n", "t.txt", 4)


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_a_list_that_is_not_utf8_fails_at_start_naming_the_line(tmp_path, end):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"photo_id 1" + end + b"photo_id 2" + end + b"url https://example.com/\xff\xfe" + end)
    with pytest.raises(ValueError, match=r"bad\.txt:3.*UTF-8"):  # line 3 however lines end (a lone CR said 1)
        Blocklist([str(path)], 4, METADATA_KINDS)


def test_a_byte_order_mark_and_crlf_are_not_errors(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes("\ufeffphoto_id 42\r\nurl https://www.flickr.com/photos/x/43/\r\n".encode())
    entries = parse_blocklists(read_blocklists([str(path)]), 4)
    assert [(e.kind, e.source) for e in entries] == [("photo_id", "windows.txt:1"), ("url", "windows.txt:2")]
    assert Matcher(entries, METADATA_KINDS).match(photo("43")).source == "windows.txt:2"



@given(lines=st.lists(st.tuples(st.sampled_from(["entry", "comment", "entry # note", "blank"]),
                                st.sampled_from(["\n", "\r\n", "\r"])), min_size=1, max_size=12))
def test_every_entry_counts_whatever_the_line_ends_and_comments(lines):
    """A list saved with old Mac line ends ("\r" alone) was one line: behind a first "# takedowns" comment every
    entry was silently a comment, and behind an entry's trailing comment every later one. Each entry is read, on
    the line an editor shows it on (the oracle: the list as it was written, line by line)."""
    text, expected = "", []
    for number, (kind, end) in enumerate(lines, start=1):
        line = {"entry": f"photo_id {number}", "comment": "# takedowns", "entry # note": f"photo_id {number} # note",
                "blank": " "}[kind]  # not "": a "\r" then "\n" is one CRLF
        text += line + end
        if kind.startswith("entry"):
            expected.append((str(number), f"t.txt:{number}"))
    assert [(e.value, e.source) for e in parse_blocklist(text, "t.txt", 4)] == expected


@pytest.mark.parametrize("brk", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1e"])
def test_a_line_break_hidden_in_a_comment_fails_at_start(brk):
    """Some editors show these as line ends; inside a comment the entry after one was silently a comment too."""
    with pytest.raises(ValueError, match=r"t\.txt:2: a line break"):
        parse_blocklist(f"photo_id 1\n# takedowns{brk}photo_id 2\n", "t.txt", 4)
    assert [e.value for e in parse_blocklist(f"photo_id 1{brk}\nphoto_id 2\n", "t.txt", 4)] == ["1", "2"]

# --- RFC 3986 6.2.2: every spelling requests sends as one request is one takedown ---------------------------------

@pytest.mark.parametrize(("listed", "row_url"), [
    ("https://example.com/My%20Cat.jpg", "https://example.com/My Cat.jpg"),  # a space, as requests sends it
    ("https://example.com/%41lice.jpg", "https://example.com/Alice.jpg"),  # an escaped unreserved character
    ("https://example.com/a%2fb.jpg", "https://example.com/a%2Fb.jpg"),  # hex digits in either case
    ("https://example.com/caf%C3%A9.jpg", "https://example.com/café.jpg"),  # non-ASCII as UTF-8
    ("https://example.com/caf%c3%a9.jpg", "https://example.com/café.jpg"),
    ("https://example.com/%7euser/a%2D%5F%2E%30.jpg", "https://example.com/~user/a-_.0.jpg"),
    ("https://example.com/v?name=My%20Cat&x=%41", "https://example.com/v?name=My Cat&x=A"),  # the query too
    ("https://example.com/a/b/c.jpg", "https://example.com/a/./x/../b/c.jpg"),  # dot segments, as urllib3 sends
    ("https://xn--bcher-kva.de/x.jpg", "https://BÜcher.de/x.jpg"),  # an international host in its IDNA form
    ("https://bücher.de/x.jpg", "https://xn--bcher-kva.de/x.jpg"),
    ("https://example.com/a|b%7b%7D.jpg", "https://example.com/a%7Cb{}.jpg"),  # outside the URL alphabet
    ("https://www.flickr.com/photos/x/%34%33/", "https://www.flickr.com/photos/x/43/"),  # still Flickr photo 43
])
def test_a_takedown_matches_every_spelling_requests_sends_as_the_same_url(listed, row_url):
    """A listed URL and a row's URL that requests sends as the same request (or that RFC 3986 6.2.2 calls
    equivalent) were compared as written: the photo was fetched though its URL was taken down."""
    import requests

    assert requests.Request("GET", listed).prepare().url == requests.Request("GET", row_url).prepare().url
    _assert_blocked(listed, row_url)


@pytest.mark.parametrize("hidden", ["\u200b", "\u200e", "\u00ad", "\ufeff", "\u2060", "\u202e", "\x1b", "\x7f"],
                         ids=["zwsp", "lrm", "soft-hyphen", "bom", "word-joiner", "rlo", "esc", "del"])
def test_a_takedown_url_holding_an_invisible_character_fails_at_launch_not_matching_nothing(hidden):
    """A takedown URL copied from a web page, a PDF or an e-mail can carry a character no one sees (a zero-width
    space, a left-to-right mark, a soft hyphen) or a control character: the entry was accepted, the character sent
    escaped (`%E2%80%8B`), and it matched no photo, the one named on the line kept without a word. Such an entry fails
    at launch naming its line and the character; the URL holding it escaped is still an entry."""
    for url in (f"https://example.com/a.jpg{hidden}", f"https://images.example.org/{hidden}b.jpg"):
        with pytest.raises(ValueError, match=rf"t\.txt:2: .*U\+{ord(hidden):04X}"):
            parse_blocklist(f"photo_id 1\nurl {url}\n", "t.txt", 4)
    escaped = "".join(f"%{byte:02X}" for byte in hidden.encode())
    _assert_blocked(f"https://example.com/a.jpg{escaped}", f"https://example.com/a.jpg{hidden}")


@pytest.mark.parametrize(("url", "tail"), [
    ("https://example.com/takedown/a.jpg.", "."), ("https://cdn.example.org/a.jpg),", "),"),
    ("https://example.com/v?id=5;", ";"), ("https://example.com/a.jpg:", ":"),
    ("https://www.flickr.com/photos/someone/123.", "."), ("https://www.flickr.com/photos/someone/123),", "),"),
    ("https://flic.kr/p/2abc.", "."), ("https://live.staticflickr.com/65535/123_ab_b.jpg;", ";"),
])
def test_a_takedown_url_copied_with_the_punctuation_after_it_fails_at_launch_naming_it(url, tail):
    """A URL copied from a sentence ("see https://…/a.jpg.", "(…/123),") kept the punctuation after it: another site's
    URL was a key no photo has, the photo named on the line kept without a word; a Flickr one was refused as naming no
    photo ("an album, a user or tag page?"), which it does once the punctuation goes. Such an entry fails at launch
    naming its line and what it ends in, as an entry holding a character no one sees does."""
    with pytest.raises(ValueError, match=rf"t\.txt:2: the URL ends in {re.escape(repr(tail))}, punctuation"):
        parse_blocklist(f"photo_id 1\nurl {url}\n", "t.txt", 4)


@pytest.mark.parametrize(("url", "tail", "escaped"), [
    ("https://example.com/v?id=5;", ";", "https://example.com/v?id=5%3B"),
    ("https://example.com/a.jpg:", ":", "https://example.com/a.jpg%3A"),
    ("https://cdn.example.org/img?crop=0,0,", ",", "https://cdn.example.org/img?crop=0,0%2C"),
])
def test_a_refused_url_ending_in_punctuation_escaping_does_not_keep_is_told_what_does_name_its_photo(url, tail,
                                                                                                   escaped):
    """The refusal of a URL ending in punctuation said to write a URL that does end so escaped, "%2E", which holds for
    a '.' only: an escaped ';', ':' or ',' is another URL (an escaped reserved character is never decoded), so the
    entry written as told was taken and blocked no photo, the photo kept without a word. Where the tail is more than
    dots, the refusal says such a URL is listed by its photo's id or sha256, and names no escape."""
    with pytest.raises(ValueError, match=rf"ends in {re.escape(repr(tail))}") as refused:
        parse_blocklist(f"url {url}\n", "t.txt", 4)
    assert "%2E" not in str(refused.value) and "photo_id or sha256" in str(refused.value)
    matcher = Matcher(parse_blocklist(f"url {escaped}\n", "t.txt", 4), METADATA_KINDS)
    assert matcher.match(photo("5", download_url=url)) is None  # why no escape is offered


@pytest.mark.parametrize(("listed", "row_url"), [
    ("https://www.flickr.com/photos/someone/123/.", "https://www.flickr.com/photos/someone/123/"),  # a dot segment
    ("https://www.flickr.com/photos/someone/123/,", "https://www.flickr.com/photos/someone/123/"),  # after the page
    ("https://en.example.org/wiki/Lake_(Bled)", "https://en.example.org/wiki/Lake_(Bled)"),  # its own parenthesis
    ("https://example.com/a%2E", "https://example.com/a."),  # a URL that does end in "." takes it escaped
])
def test_a_takedown_url_ending_in_punctuation_that_names_the_same_photo_or_its_own_is_an_entry(listed, row_url):
    _assert_blocked(listed, row_url)


def test_escaped_dot_segments_are_dot_segments():
    """RFC 3986 6.2.2: escapes are normalised before dot segments are removed, so "%2E%2E" is ".." (requests sends
    it escaped; a server that decodes it reads the same path)."""
    _assert_blocked("https://example.com/a/c.jpg", "https://example.com/a/b/%2E%2E/c.jpg")
    _assert_blocked("https://example.com/a/c.jpg", "https://example.com/a/%2e/c.jpg")


def _assert_blocked(listed: str, row_url: str) -> None:
    matcher = Matcher(parse_blocklist(f"url {listed}\n", "t.txt", 4), METADATA_KINDS)
    for field in ("download_url", "page_url", "fetched_url"):
        assert matcher.match(photo("5", **{field: row_url})) is not None, (listed, row_url, field)


@pytest.mark.parametrize(("listed", "row_url"), [
    ("https://example.com/a%2Fb.jpg", "https://example.com/a/b.jpg"),  # an escaped "/" is data, not a delimiter
    ("https://example.com/v?q=a%26b=c", "https://example.com/v?q=a&b=c"),  # nor an escaped "&"
    ("https://example.com/a%3Fb", "https://example.com/a?b"),
    ("https://example.com/My%2520Cat.jpg", "https://example.com/My%20Cat.jpg"),  # an escaped "%" is a "%"
    ("https://example.com/a/%2E%2E%2Fb.jpg", "https://example.com/b.jpg"),
])
def test_an_escaped_reserved_character_is_never_decoded(listed, row_url):
    matcher = Matcher(parse_blocklist(f"url {listed}\n", "t.txt", 4), METADATA_KINDS)
    assert matcher.match(photo("5", download_url=row_url)) is None, (listed, row_url)


_RESERVED = ":@!$&'()*+,;="  # reserved characters a path segment may hold as they are ("/", "?", "#" delimit it)
_OUTSIDE = ' "<>\\^`{|}é猫\u00a0'  # characters no URL holds as they are: requests escapes them as UTF-8
_SEGMENT_CHARS = string.ascii_letters + string.digits + "-._~" + _RESERVED + _OUTSIDE + "%"


def _oracle(char: str) -> str:
    """A character's one spelling in a normal URL, by RFC 3986 2.2-2.4 read character by character."""
    if char in string.ascii_letters + string.digits + "-._~" + _RESERVED:
        return char
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


def _spelling(char: str, how: int) -> str:
    """One way of writing `char` that means the same: as it is (where that is not a "%", which would start an
    escape), or escaped in upper- or lower-case hex. A reserved character is always written as it is: escaping it
    names another resource."""
    escaped = "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
    if char in _RESERVED or (how == 0 and char != "%"):
        return char
    return escaped if how == 1 else escaped.lower()


_segments = st.lists(st.lists(st.sampled_from(_SEGMENT_CHARS), max_size=6), min_size=1, max_size=4)
_ways = st.lists(st.integers(0, 2), min_size=24, max_size=24)  # how each character is written, in order


def _path(segments: list[list[str]], write) -> str:
    return "/".join("".join(write(index, char) for index, char in segment) for segment in _numbered(segments))


def _numbered(segments: list[list[str]]) -> list[list[tuple[int, str]]]:
    """Each character with its position in the whole path, so that a list of ways can say how each is written."""
    numbered, index = [], 0
    for segment in segments:
        numbered.append([(index + offset, char) for offset, char in enumerate(segment)])
        index += len(segment)
    return numbered


@settings(max_examples=300, deadline=None)
@given(segments=_segments, one=_ways, two=_ways)
def test_every_spelling_of_one_path_normalises_to_the_oracles_one(segments, one, two):
    """Brute force: a path is a list of characters; writing each of them any way that means the same (escaped
    or not, in either case of hex digit) gives one key, the one the oracle spells character by character."""
    from pipeline.stages.blocklist import canonical_url

    assume(all("".join(segment) not in (".", "..") for segment in segments))  # dot segments: tested above
    expected = ("/" + _path(segments, lambda index, char: _oracle(char))).rstrip("/")  # no trailing slash
    first = _path(segments, lambda index, char: _spelling(char, one[index]))
    second = _path(segments, lambda index, char: _spelling(char, two[index]))
    assert canonical_url(f"https://example.com/{first}") == ("url", f"example.com{expected}"), first
    assert canonical_url(f"https://Example.COM/{second}") == canonical_url(f"https://example.com/{first}")


@settings(max_examples=200, deadline=None)
@given(before=st.text(st.sampled_from(string.ascii_letters + "-._~"), max_size=5),
       after=st.text(st.sampled_from(string.ascii_letters + "-._~"), max_size=5),
       reserved=st.sampled_from(_RESERVED + "/?"), lower=st.booleans())
def test_a_reserved_character_and_its_escape_never_normalise_equal(before, after, reserved, lower):
    from pipeline.stages.blocklist import canonical_url

    assume(reserved != "/" or not {before, after} & {".", ".."})  # "a/.." is no longer a path with a "/" in it
    escape = f"%{ord(reserved):02X}"
    escaped = f"https://example.com/x{before}{escape.lower() if lower else escape}{after}y"
    plain = f"https://example.com/x{before}{reserved}{after}y"
    assert canonical_url(escaped) != canonical_url(plain)


def test_a_long_list_reaches_the_workers_as_a_copy_not_in_the_job_graph(tmp_path):
    """Each Blocklist stage pickled the lists' text into the job graph: 200,000 sha256 entries (14 MB of text) were
    9 MB a stage, four stages in a refresh. With the copy the job makes at launch, a stage is its path and hash; a
    copy changed after launch is refused by the worker, never applied."""
    import pickle

    from pipeline.stages.blocklist import copy_blocklists

    path = tmp_path / "hashes.txt"
    path.write_text("".join(f"sha256 {index:064x}\n" for index in range(20_000)))
    texts = read_blocklists([str(path)])
    copies = copy_blocklists(texts, str(tmp_path / "staging" / "_lists"))
    inline = Blocklist([str(path)], 4, CONTENT_KINDS, texts=texts)
    copied = Blocklist([str(path)], 4, CONTENT_KINDS, texts=texts, copies=copies)
    assert len(pickle.dumps(inline._fn)) > path.stat().st_size / 2
    assert len(pickle.dumps(copied._fn)) < 1024
    path.write_text("")  # what the job applies is what it read at launch
    with local_pipeline() as p:
        listed = photo("1", sha256=f"{19_999:064x}")
        out = p | beam.Create([listed, photo("2", sha256=f"{20_000:064x}")]) | copied
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["2"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: r.detail),
                    equal_to([f"hashes.txt:20000 sha256 {19_999:064x}"]), label="rejected")
    worker = pickle.loads(pickle.dumps(copied._fn))
    with open(copies[0].path, "a") as handle:
        handle.write("sha256 " + "f" * 64 + "\n")
    with pytest.raises(RuntimeError, match=r"the copy of hashes\.txt the job made at launch .* has changed"):
        worker.setup()


def test_a_long_list_is_parsed_and_held_once_per_worker_process_however_many_stage_instances(tmp_path):
    """A runner sets up a stage's DoFn once per thread, and a refresh has two stages of each kind: a list of 2 million
    entries (630 MB parsed) was parsed and held once per instance, per worker process. Instances of one list's stage
    share what one parsed."""
    import pickle
    import tracemalloc

    from pipeline.stages.blocklist import copy_blocklists

    path = tmp_path / "hashes.txt"
    path.write_text(f"# {tmp_path}\n" + "".join(f"sha256 {index:064x}\n" for index in range(50_000)))
    texts = read_blocklists([str(path)])
    copies = copy_blocklists(texts, str(tmp_path / "staging" / "_lists"))
    stage = Blocklist([str(path)], 4, CONTENT_KINDS, texts=texts, copies=copies)
    instances = [pickle.loads(pickle.dumps(stage._fn)) for _ in range(4)]  # as four threads' bundle processors get
    tracemalloc.start()
    try:
        instances[0].setup()
        one = tracemalloc.get_traced_memory()[0]
        for instance in instances[1:]:
            instance.setup()
        four = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert one > 5_000_000  # the parsed list is held (some 10 MB here)
    assert four - one < one / 4, (one, four)
    listed = photo("1", sha256=f"{49_999:064x}")
    assert [type(out).__name__ for instance in instances for out in instance.process(listed)] == ["TaggedOutput"] * 4


@pytest.mark.parametrize("listed", ["url https://www.flickr.com/photos/someone/12345/", f"url {_flic_kr(12345)}",
                                    "url https://live.staticflickr.com/65535/12345_abcdef_b.jpg",
                                    "url https://www.flickr.com/photo.gne?id=12345"])
def test_a_flickr_url_takedown_keeps_out_the_row_of_its_id_whatever_its_site_and_rows_naming_that_photo(listed):
    """A Flickr URL names photo 12345. A table's ids may be Flickr's served from a mirror (YFCC's images from a
    bucket, no page URL) or another site's own: the row of that id is kept out either way (a takedown missed is a
    photographer's photo published against their request; a wrong removal costs one photo), and so is every row whose
    own page, download or served URL is Flickr's photo 12345. A bare `photo_id 12345` keeps out the same rows."""
    layout = table_layout("csv")
    row = {"id": "12345", "url": "https://images.example.org/12345.jpg", "owner": "someone", "license": "CC BY 4.0"}
    mirrored = parse_row(row, "t.csv:2", layout)
    listed_photos = [mirrored, photo("12345"), photo("012345", source="flickr"),
                     parse_row({**row, "page_url": "https://www.flickr.com/photos/someone/12345/"}, "t.csv:4", layout),
                     parse_row({**row, "id": "7", "url": "https://live.staticflickr.com/1/12345_ab_z.jpg"}, "t.csv:5",
                               layout),
                     parse_row({**row, "id": "8"}, "t.csv:6", layout).replace(
                         fetched_url="https://live.staticflickr.com/1/12345_ab_b.jpg"),
                     parse_row({**row, "id": "9", "page_url": "https://flickr.com/photos/x/12345/"}, "t.csv:7", layout)]
    for entry in (listed, "photo_id 12345"):
        matcher = Matcher(parse_blocklist(entry + "\n", "t.txt", 4), METADATA_KINDS)
        for listed_photo in listed_photos:
            assert matcher.match(listed_photo) is not None, (entry, listed_photo)
        assert matcher.match(parse_row({**row, "id": "12346"}, "t.csv:8", layout)) is None, entry


@pytest.mark.parametrize("url", [
    "https://flickr.com.evil.example/photos/a/1/", "https://www.flickr.com.evil.example/photos/a/1/",
    "https://live.staticflickr.com.evil.example/65535/1_abcdef_b.jpg", "https://flic.kr.evil.example/p/2",
    "https://www.fIickr.com/photos/a/1/", "https://www.f1ickr.com/photos/a/1/", "https://FLlCKR.COM/photos/a/1/",
    "https://www.fl\u0456ckr.com/photos/a/1/", "https://www.\u0066l\u0131ckr.com/photos/a/1/",
    "https://www.xn--flckr-o2e.com/photos/a/1/", "https://flick\u0433.com/photos/a/1/",
    "https://live.staticfl\u0456ckr.com/65535/1_abcdef_b.jpg", "https://www.flickr.com-photos.example/a/1/",
    "https://www.flickr.com@evil.example/photos/a/1/", "https://flickr.com:x@evil.example/photos/a/1/",
    "https://blog.flickr.com/photos/a/1/", "https://www.flickriver.com/photos/a/1/",
    "https://evil.example\\@www.flickr.com/photos/a/1/", "https://www.flickr.com\\@evil.example/photos/a/1/",
])
def test_a_takedown_url_on_a_host_that_reads_as_flickrs_and_is_not_fails_at_launch_naming_it(tmp_path, url):
    """A look-alike of Flickr's hosts (another site's domain after `flickr.com.`, a capital I or a 1 for the l, a
    Cyrillic i, the punycode of one, Flickr's name as user info before another host) was taken as another site's URL,
    a key no photo has: the photo its author meant, Flickr's photo 1, kept without a word. Only Flickr's own hosts
    name a Flickr photo; an entry on a host whose name reads as Flickr's and is not one of them fails at launch naming
    its line and the host, and matches nothing."""
    path = tmp_path / "bad.txt"
    path.write_text(f"photo_id 5\n{'url ' + url}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:2: .*(not one of Flickr's|a backslash)"):
        Blocklist([str(path)], 4, METADATA_KINDS)


@pytest.mark.parametrize("url", [
    "https://www.flickr.com/photos/a/1/", "http://flickr.com/photos/a/1", "https://m.flickr.com/photos/a/1/",
    "https://secure.flickr.com/photos/a/1/", "https://WWW.FLICKR.COM./photos/a/1/", "https://flickr.com:443/photos/a/1/",
    "https://\uff46\uff4c\uff49\uff43\uff4b\uff52.com/photos/a/1/", "https://flic.kr/p/2",
    "https://live.staticflickr.com/65535/1_abcdef_b.jpg", "https://farm1.static.flickr.com/1/1_abcdef.jpg",
    "https://c1.staticflickr.com/1/1/1_abcdef_z.jpg", "https://editor:pw@www.flickr.com/photos/a/1/",
    "https://www.flickr.com\u3002/photos/a/1/", "https://www.flickr.com%2E/photos/a/1/",
    "https://flic.kr\uff0e/p/2", "https://live.staticflickr.com%2e/65535/1_abcdef_b.jpg",
    "https://\uff57\uff57\uff57.flickr.com%2E/photos/a/1/", "https://www.flickr.com\u3002\u3002/photos/a/1/",
    "https://www.flickr.com.\u3002/photos/a/1/", "https://www.flickr.com%E3%80%82/photos/a/1/",
])
def test_a_takedown_url_on_flickrs_own_hosts_names_its_photo(url):
    """Flickr's own hosts, however spelt (case, a final dot, the default port, full-width letters requests sends as
    flickr.com), still name Flickr's photo 1. A final dot written as an ideographic or full-width full stop (which
    IDNA, as requests sends the host, makes a '.') or escaped (%2E) is a final dot too: it was kept where the plain one
    was dropped, so `www.flickr.com。` was refused as a host that reads as Flickr's and is not one of them; so were
    an escaped final dot after full-width letters, two final dots one of them ideographic, and an escaped ideographic
    one."""
    entries = parse_blocklist(f"url {url}\n", "t.txt", 4)
    assert Matcher(entries, METADATA_KINDS).match(photo("1")) is not None


@pytest.mark.parametrize("url", ["https://images.example.org/1.jpg", "https://cdn.flick.example/photos/a/1/",
                                 "https://editor:pw@cdn.example/a.jpg", "https://www.example.com/flickr/1.jpg"])
def test_a_takedown_url_on_another_sites_host_is_still_that_sites_url(url):
    entries = parse_blocklist(f"url {url}\n", "t.txt", 4)
    assert Matcher(entries, METADATA_KINDS).match(photo("9", download_url=url)) is not None
    assert Matcher(entries, METADATA_KINDS).match(photo("1")) is None


@pytest.mark.parametrize("url", [
    "https://flickr.com:hunter2secret@evil.example/photos/a/1/",  # refused: user info that reads as Flickr's host
    "https://flickrbot:hunter2secret@mirror.example/a.jpg",
    "https://editor:hunter2secret@www.fllckr.com/photos/a/1/",  # refused: a look-alike host
    "https://editor:hunter2secret@images.example.org/a.jpg.",  # refused: punctuation from a sentence
    "https://images.example.org/a.jpg?token=hunter2secret.",
    "https://editor:hunter2secret@evil.example\\@www.flickr.com/photos/a/1/",  # refused: a backslash in its host part
])
def test_a_refused_takedown_url_is_told_without_its_password_or_query(url):
    """A refused url entry was quoted whole in the launch's error, and a user info that reads as Flickr's host quoted
    again: a password or a token in it (a mirror's, a CDN's signed query) went to the terminal and the job's logs,
    where every other message shows a URL masked. The line and what is wrong are still named."""
    with pytest.raises(ValueError, match=r"^t\.txt:1: ") as err:
        parse_blocklist(f"url {url}\n", "t.txt", 4)
    assert "hunter2secret" not in str(err.value), str(err.value)
