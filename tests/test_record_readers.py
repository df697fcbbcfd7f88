"""The readers of each published format (`release/record_readers.py`): TFRecord CRCs, ATTRIBUTION.csv read as a
stream, and credits compared alike however ATTRIBUTION.csv spells them."""

import pytest

from pipeline.io.formats import tfrecord_frame
from pipeline.release.record_readers import tfrecords


def test_tfrecord_records_are_read_with_their_crcs_checked():
    data = tfrecord_frame(b"one") + tfrecord_frame(b"two")
    assert list(tfrecords(data)) == [b"one", b"two"]
    broken = bytearray(data)
    broken[13] ^= 1  # a payload byte of the first record: its data CRC no longer matches
    with pytest.raises(ValueError, match="record 0"):
        list(tfrecords(bytes(broken)))


def test_attribution_ids_are_read_without_holding_the_file_again_as_text():
    """Decoded whole, ATTRIBUTION.csv was held again at up to 4 bytes a character: 5-8 times the file, ~10 GB for a
    1.4M-photo release, in every refresh's first step. Read as a stream, the ids are what it holds."""
    import tracemalloc

    from pipeline.release.record_readers import record_ids

    header = "photo_id,creator,creator_url,title,page_url,license_name,license_url\n"
    row = "{0},Owner,https://www.flickr.com/people/1@N00/,A title 😀,https://www.flickr.com/photos/x/{0}/,CC BY 2.0,x\n"
    data = (header + "".join(row.format(i) for i in range(1, 50_001))).encode()
    tracemalloc.start()
    try:
        ids, odd, _ = record_ids("attribution", data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ids[:2] == ["1", "2"] and len(ids) == 50_000 and odd == []
    assert peak < len(data), (peak, len(data))  # the ids themselves: ~60 bytes each; decoded whole, ~5 times the file


@pytest.mark.parametrize("title", ["=HYPERLINK(\"x\")", "a;'=b\tc", "line\r\nnext\rlast", "\x1b[8m\u202e\u200b",
                                   "'@x", "\ufffd", "comma, \"quote\""])
def test_a_hostile_credit_read_back_from_attribution_is_the_shards_credit(title):
    """What csv_cell does to a cell (a quote before a formula, U+FFFD for a control character, quoting) is undone
    or done alike on both sides: an intact release's hostile titles and names are never reported."""
    from pipeline.io.attribution import attribution_csv, attribution_row
    from pipeline.records import Photo
    from pipeline.release.record_readers import _record_credit, record_ids

    photo = Photo(photo_id="7", owner_name=f"-{title}", owner_nsid="1@N00", title=title,
                  page_url="https://www.flickr.com/photos/1@N00/7/", license_name="CC BY 2.0",
                  license_url="https://creativecommons.org/licenses/by/2.0/")
    ids, odd, (_, credits) = record_ids("attribution", attribution_csv([attribution_row(photo)]))
    assert list(ids) == ["7"] and odd == []
    assert _matches(credits, _record_credit({name: getattr(photo, name) for name in (
        "owner_name", "owner_nsid", "title", "page_url", "license_name", "license_url")}))


def _matches(attribution: bytes, record: bytes) -> bool:
    """Whether an ATTRIBUTION.csv row's credit digest is one of the credits a shard's record allows (verify's
    comparison: the one this version writes, or the one an earlier version wrote of it)."""
    from pipeline.release.record_readers import CREDIT_FORMS, DIGEST

    assert len(attribution) == DIGEST and len(record) == CREDIT_FORMS * DIGEST
    return attribution in [record[form * DIGEST:(form + 1) * DIGEST] for form in range(CREDIT_FORMS)]


def _attribution_credit(cells: list[str]) -> bytes:
    from pipeline.io.attribution import ATTRIBUTION_COLUMNS
    from pipeline.io.sinks import csv_bytes
    from pipeline.release.record_readers import record_ids

    records = record_ids("attribution", csv_bytes(ATTRIBUTION_COLUMNS, [cells]))
    assert records is not None  # for the type checker: None is for a format that is not the dataset's
    return records[2][1]


def test_a_credit_by_the_owners_id_matches_however_an_earlier_version_wrote_a_blank_name():
    """A name of zero-width spaces is credited by the owner's id now; a file written before held the blank name. Both
    match the shard's record, and a real name swapped for the id in the file still does not."""
    from pipeline.release.record_readers import _record_credit

    tail = ["https://www.flickr.com/photos/1@N00/7/", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page = "https://www.flickr.com/people/1@N00/"

    def record(name: str) -> bytes:
        return _record_credit({"owner_name": name, "owner_nsid": "1@N00", "title": "t", "page_url": tail[0],
                               "license_name": tail[1], "license_url": tail[2]})

    for written in ("\u200b\u200b", "1@N00"):  # as an earlier version wrote it, as this one does
        assert _matches(_attribution_credit(["7", written, page, "t", *tail]), record("\u200b\u200b"))
    assert not _matches(_attribution_credit(["7", "1@N00", page, "t", *tail]), record("Ann"))
    assert _matches(_attribution_credit(["7", "Ann", page, "t", *tail]), record("Ann"))


def test_a_name_of_control_characters_an_earlier_version_wrote_as_ufffd_still_matches():
    """Such a name (BEL: a YFCC row may hold one) shows nothing, so its credit is the owner's id now; an earlier
    version wrote it as U+FFFD, and the release it published was refused by verify, and with it every refresh."""
    from pipeline.release.record_readers import _record_credit

    tail = ["https://www.flickr.com/photos/1@N00/7/", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page = "https://www.flickr.com/people/1@N00/"
    record = _record_credit({"owner_name": "\x07\x07", "owner_nsid": "1@N00", "title": "t", "page_url": tail[0],
                             "license_name": tail[1], "license_url": tail[2]})
    for written in ("\x07\x07", "1@N00"):  # as an earlier version wrote it (U+FFFD twice), as this one does
        assert _matches(_attribution_credit(["7", written, page, "t", *tail]), record)
    assert not _matches(_attribution_credit(["7", "Ann", page, "t", *tail]), record)


def test_rows_naming_a_large_dictionary_entry_are_read_a_few_at_a_time(tmp_path, monkeypatch):
    """pyarrow copies a dictionary entry into every row naming it: 16,384 rows (a table's batch) naming one entry of
    a few MiB would take gigabytes, from a file of kilobytes. The rows of a batch are bounded by the largest
    dictionary page instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.release import record_readers

    monkeypatch.setattr(record_readers, "_DICTIONARY_ROWS_BYTES", 16 << 20)
    path = tmp_path / "ledger.parquet"
    pq.write_table(pa.table({"photo_id": ["x" * (2 << 20)] * 300, "decision": ["kept"] * 300}), path,
                   compression="zstd")
    assert path.stat().st_size < 64 << 10
    with path.open("rb") as handle:
        sizes = [batch.num_rows for batch in record_readers.bounded_batches(handle, ["photo_id", "decision"], 16_384)]
    assert sum(sizes) == 300 and max(sizes) == (16 << 20) // ((2 << 20) + 4)
    with path.open("rb") as handle:  # the decision column alone: its dictionary is a few bytes
        assert [batch.num_rows for batch in record_readers.bounded_batches(handle, ["decision"], 16_384)] == [300]


def test_rows_each_naming_its_own_page_are_bounded_in_all(tmp_path, monkeypatch):
    """Each page within `_PAGE_FLOOR` bounds no batch: rows of a page each (of zeros, kilobytes once compressed) made a
    batch of a page's size times its rows. A row group's columns read are bounded in all."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from pipeline.release import record_readers
    from pipeline.sources.parquet_pages import TooLarge

    monkeypatch.setattr(record_readers, "_PAGE_FLOOR", 4 << 20)
    monkeypatch.setattr(record_readers, "_GROUP_FLOOR", 16 << 20)
    path = tmp_path / "ledger.parquet"
    pq.write_table(pa.table({"photo_id": ["x" * (3 << 20)] * 12, "decision": ["kept"] * 12}), path, compression="zstd",
                   use_dictionary=False, data_page_size=1, write_batch_size=1)
    assert path.stat().st_size < 64 << 10
    with path.open("rb") as handle, pytest.raises(TooLarge, match="over the 16,777,216 allowed"):
        list(record_readers.bounded_batches(handle, ["photo_id", "decision"], 16_384))
    with path.open("rb") as handle:  # the decision column alone is a few bytes
        assert sum(batch.num_rows for batch in record_readers.bounded_batches(handle, ["decision"], 16_384)) == 12


def test_a_credit_an_earlier_version_wrote_with_tag_characters_in_it_is_the_shards_credit():
    """ATTRIBUTION.csv drops tag characters (but a subdivision flag's) from a title and a name now; a file an earlier
    version wrote holds them. Either matches the shard's record, which holds the source's text, and another title
    still does not."""
    from pipeline.release.record_readers import _record_credit

    hidden = "".join(chr(0xE0000 + ord(char)) for char in "this photo is CC0")
    scotland = "\U0001f3f4" + "".join(chr(0xE0000 + ord(char)) for char in "gbsct") + "\U000e007f"
    tail = ["https://www.flickr.com/photos/1@N00/7/", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page = "https://www.flickr.com/people/1@N00/"
    shard = _record_credit({"owner_name": f"Ann{hidden}", "owner_nsid": "1@N00", "title": f"Loch{hidden} {scotland}",
                            "page_url": tail[0], "license_name": tail[1], "license_url": tail[2]})
    for name, title in ((f"Ann{hidden}", f"Loch{hidden} {scotland}"), ("Ann", f"Loch {scotland}")):
        assert _matches(_attribution_credit(["7", name, page, title, *tail]), shard)
    assert not _matches(_attribution_credit(["7", "Ann", page, "Loch", *tail]), shard)


def test_a_credit_an_earlier_version_wrote_with_a_stack_of_combining_marks_is_the_shards_credit():
    """ATTRIBUTION.csv keeps at most `MAX_MARKS` combining marks on a character now; a file an earlier version wrote
    holds all of them. Either matches the shard's record, and a stack cut elsewhere does not."""
    from pipeline.io.published_text import MAX_MARKS
    from pipeline.release.record_readers import _record_credit

    zalgo = "".join(chr(0x300 + index % 0x70) for index in range(300))
    tail = ["https://www.flickr.com/photos/1@N00/7/", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page = "https://www.flickr.com/people/1@N00/"
    shard = _record_credit({"owner_name": f"Ann{zalgo}", "owner_nsid": "1@N00", "title": f"S{zalgo}ea",
                            "page_url": tail[0], "license_name": tail[1], "license_url": tail[2]})
    for name, title in ((f"Ann{zalgo}", f"S{zalgo}ea"), (f"Ann{zalgo[:MAX_MARKS]}", f"S{zalgo[:MAX_MARKS]}ea")):
        assert _matches(_attribution_credit(["7", name, page, title, *tail]), shard)
    assert not _matches(_attribution_credit(["7", "Ann", page, f"S{zalgo[:MAX_MARKS]}ea", *tail]), shard)


def test_a_table_rows_creator_link_matches_however_an_earlier_version_wrote_it():
    """A table's row has no owner id: ATTRIBUTION.csv links the account its Flickr page names (or its owner column
    credits) now, where an earlier version wrote no link. Either matches the shard's record; another account's link,
    or a link where no account is known, still does not."""
    from pipeline.release.record_readers import _record_credit

    tail = ["CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]

    def record(name: str, page: str, nsid: str = "") -> bytes:
        return _record_credit({"owner_name": name, "owner_nsid": nsid, "title": "t", "page_url": page,
                               "license_name": tail[0], "license_url": tail[1]})

    page, elsewhere = "https://www.flickr.com/photos/0012@n01/7/", "https://example.org/7.jpg"
    link = "https://www.flickr.com/people/12@N01/"
    for name, url in (("Ann", page), ("12@N01", elsewhere), (" 012@n01", elsewhere)):
        for written in ("", link):  # as an earlier version wrote it, as this one does
            assert _matches(_attribution_credit(["7", name, written, "t", url, *tail]), record(name, url))
        for wrong in ("https://www.flickr.com/people/13@N01/", "https://www.flickr.com/people/0012@n01/",
                      "https://example.org/people/12@N01/"):
            assert not _matches(_attribution_credit(["7", name, wrong, "t", url, *tail]), record(name, url))
    alias = "https://www.flickr.com/photos/someone/7/"
    for name, url in (("Ann", alias), ("Ann", elsewhere), ("", elsewhere)):  # no account known: no link
        assert _matches(_attribution_credit(["7", name, "", "t", url, *tail]), record(name, url))
        assert not _matches(_attribution_credit(["7", name, link, "t", url, *tail]), record(name, url))
    # A row with an owner id is linked by it: another account's link, or the page's account's, differs.
    assert _matches(_attribution_credit(["7", "Ann", link, "t", alias, *tail]), record("Ann", alias, "12@N01"))
    assert not _matches(_attribution_credit(["7", "Ann", link, "t", page, *tail]), record("Ann", page, "5@N00"))
    assert not _matches(_attribution_credit(["7", "Ann", "", "t", alias, *tail]), record("Ann", alias, "12@N01"))


def test_a_cell_removed_from_attribution_is_told_from_a_credit_an_earlier_version_wrote():
    """Read from ATTRIBUTION.csv alone, a row with an owner id whose page names the same account, its creator link
    removed, read as a table's row an earlier version wrote without one; and a table's row crediting an account id
    by name, its creator emptied, read as a blank name an earlier version wrote. Each shard's record says which it
    is: such a removed cell differs, while each credit an earlier version wrote of the record still matches."""
    from pipeline.release.record_readers import _TFRECORD_CREDIT, _record_credit

    tail = ["CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page, elsewhere = "https://www.flickr.com/photos/12@N01/7/", "https://example.org/7.jpg"
    link = "https://www.flickr.com/people/12@N01/"

    def record(name: str, nsid: str, url: str) -> bytes:
        return _record_credit({"owner_name": name, "owner_nsid": nsid, "title": "t", "page_url": url,
                               "license_name": tail[0], "license_url": tail[1]})

    # An owner id's row: linked by every version; its link removed differs.
    assert _matches(_attribution_credit(["7", "Ann", link, "t", page, *tail]), record("Ann", "12@N01", page))
    assert not _matches(_attribution_credit(["7", "Ann", "", "t", page, *tail]), record("Ann", "12@N01", page))
    # Its blank name: credited by the id now, written as it came before (an empty one by the id in every version:
    # `test_an_empty_owner_name_credited_by_the_owner_id_in_every_version_differs_when_emptied`); the link is still
    # required.
    for written in ("12@N01", "\u200b"):
        assert _matches(_attribution_credit(["7", written, link, "t", page, *tail]), record("\u200b", "12@N01", page))
    assert not _matches(_attribution_credit(["7", "12@N01", "", "t", page, *tail]), record("\u200b", "12@N01", page))
    # A table's row crediting the account id by name: its name stays, linked now or not before; emptied, it differs.
    for url in (page, elsewhere):
        for written in (link, ""):
            assert _matches(_attribution_credit(["7", "12@N01", written, "t", url, *tail]), record("12@N01", "", url))
        assert not _matches(_attribution_credit(["7", "", link, "t", url, *tail]), record("12@N01", "", url))
    # A table's row of a blank name: credited and linked by its page's account now, neither before.
    assert _matches(_attribution_credit(["7", "12@N01", link, "t", page, *tail]), record("", "", page))
    assert _matches(_attribution_credit(["7", "", "", "t", page, *tail]), record("", "", page))
    assert not _matches(_attribution_credit(["7", "12@N01", "", "t", page, *tail]), record("", "", page))
    # A TFRecord holds the credit's creator, not the name: where it names an account, every version that wrote it so
    # credited that account by the same name in ATTRIBUTION.csv (the owner id's since the name that shows nothing was
    # credited by it there, before the TFRecord did); emptied, it differs, whatever account its page names.
    names = dict(zip(_TFRECORD_CREDIT, ["12@N01", "", "t", elsewhere, *tail], strict=True))
    assert not _matches(_attribution_credit(["7", "", link, "t", elsewhere, *tail]),
                        _record_credit(names, _TFRECORD_CREDIT))
    names = dict(zip(_TFRECORD_CREDIT, ["12@N01", "12@N01", "t", page, *tail], strict=True))
    by_id = _record_credit(names, _TFRECORD_CREDIT)
    assert _matches(_attribution_credit(["7", "12@N01", link, "t", page, *tail]), by_id)
    for cells in (["", link], ["12@N01", ""]):
        assert not _matches(_attribution_credit(["7", *cells, "t", page, *tail]), by_id)


def test_a_tfrecord_creator_naming_its_pages_account_matches_the_credit_an_earlier_version_wrote_of_it():
    """A table made from Flickr's search answers credits the owner's account id by name, its page naming the same
    account. Until the table's rows were linked, a release wrote that name without a link in ATTRIBUTION.csv and as
    the TFRecord's `creator`: the TFRecord's creator was read as a blank name credited by its account, so the row an
    earlier version wrote differed from the TFRecord's record while it matched the Parquet row's."""
    from pipeline.release.record_readers import _TFRECORD_CREDIT, _record_credit

    tail = ["CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page, link = "https://www.flickr.com/photos/12@N01/7/", "https://www.flickr.com/people/12@N01/"
    tfrecord = _record_credit(dict(zip(_TFRECORD_CREDIT, ["12@N01", "", "t", page, *tail], strict=True)),
                              _TFRECORD_CREDIT)
    parquet = _record_credit({"owner_name": "12@N01", "owner_nsid": "", "title": "t", "page_url": page,
                              "license_name": tail[0], "license_url": tail[1]})
    for record in (tfrecord, parquet):
        for written in ("", link):  # as an earlier version wrote it, as this one does
            assert _matches(_attribution_credit(["7", "12@N01", written, "t", page, *tail]), record)
        assert not _matches(_attribution_credit(["7", "", link, "t", page, *tail]), record)  # the name emptied


def test_an_empty_owner_name_credited_by_the_owner_id_in_every_version_differs_when_emptied():
    """Every version credited a photo of an empty owner name by its owner id in ATTRIBUTION.csv (`owner_name or
    owner_nsid`, then `creator_name`); only a name of characters that show nothing was once written as it came. A
    row whose creator was emptied, its link left, passed, read as such a blank name: it differs; a blank name written
    as it came still matches, and so does an earlier TFRecord's empty creator (it held the name as it came)."""
    from pipeline.release.record_readers import _TFRECORD_CREDIT, _record_credit

    tail = ["CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page, link = "https://www.flickr.com/photos/12@N01/7/", "https://www.flickr.com/people/12@N01/"

    def records(name: str) -> list[bytes]:
        return [_record_credit({"owner_name": name, "owner_nsid": "12@N01", "title": "t", "page_url": page,
                                "license_name": tail[0], "license_url": tail[1]}),
                _record_credit(dict(zip(_TFRECORD_CREDIT, [name, "12@N01", "t", page, *tail], strict=True)),
                               _TFRECORD_CREDIT)]

    for record in records(""):
        assert _matches(_attribution_credit(["7", "12@N01", link, "t", page, *tail]), record)
        for emptied in ("", "\u200b"):
            assert not _matches(_attribution_credit(["7", emptied, link, "t", page, *tail]), record)
    for record in records("\u200b"):
        for written in ("\u200b", "12@N01"):  # as an earlier version wrote it, as this one does
            assert _matches(_attribution_credit(["7", written, link, "t", page, *tail]), record)


def test_a_blank_named_table_row_matches_the_credit_each_earlier_version_wrote_of_it():
    """A table's row (no owner id) of a name that shows nothing, its Flickr page naming an account: the first
    versions wrote the blank name without a link, one linked the page's account beside the blank name (before the
    name was credited by that account too), this one credits and links the account. Each matches, whether the
    record is a Parquet row or an earlier TFRecord's (which held the blank name); another account, or the account
    named without its link, differs."""
    from pipeline.release.record_readers import _TFRECORD_CREDIT, _record_credit

    tail = ["CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"]
    page, link = "https://www.flickr.com/photos/12@N01/7/", "https://www.flickr.com/people/12@N01/"
    for blank in ("", "\u200b"):
        parquet = _record_credit({"owner_name": blank, "owner_nsid": "", "title": "t", "page_url": page,
                                  "license_name": tail[0], "license_url": tail[1]})
        tfrecord = _record_credit(dict(zip(_TFRECORD_CREDIT, [blank, "", "t", page, *tail], strict=True)),
                                  _TFRECORD_CREDIT)
        for record in (parquet, tfrecord):
            for cells in ([blank, ""], [blank, link], ["12@N01", link]):
                assert _matches(_attribution_credit(["7", *cells, "t", page, *tail]), record)
            for cells in (["12@N01", ""], ["", "https://www.flickr.com/people/13@N01/"], ["13@N01", link]):
                assert not _matches(_attribution_credit(["7", *cells, "t", page, *tail]), record)
