"""The three formats read back with independent readers: tarfile, pyarrow, Beam's TFRecord reader
(which checks both CRCs) and the official tf.train.Example protobuf definition."""

import io
import json
import tarfile

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st
from tfrecord import example_pb2

from pipeline.io import formats
from tests.conftest import local_pipeline, photo, real_jpeg

PHOTOS = [
    photo("12", image=real_jpeg("chelsea.jpg"), width=451, height=300, sha256="s" * 64, phash="0123456789abcdef",
          title="Chat — été", owner_name="Zoë", page_url="https://www.flickr.com/photos/z/12/",
          scores=(("face", 0.1),)),
    photo("345", image=real_jpeg("coffee.jpg"), width=512, height=341, title="Coffee"),
]


def written(write, records) -> bytes:
    out = io.BytesIO()
    write(out, records)
    return out.getvalue()


def test_webdataset_members_and_determinism():
    data = written(formats.write_webdataset, PHOTOS)
    assert data == written(formats.write_webdataset, PHOTOS)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        assert names == ["12.jpg", "12.json", "345.jpg", "345.json"]
        assert tar.extractfile("12.jpg").read() == PHOTOS[0].image
        meta = json.loads(tar.extractfile("12.json").read())
        assert meta["title"] == "Chat — été" and meta["scores"] == [{"detector": "", "class": "face", "score": 0.1}]
        assert "image" not in meta
        assert all(member.mtime == 0 and member.uid == 0 for member in tar.getmembers())


def test_parquet_rows():
    table = pq.read_table(io.BytesIO(written(formats.write_parquet, PHOTOS)))
    rows = table.to_pylist()
    assert [row["photo_id"] for row in rows] == ["12", "345"]
    assert rows[0]["image"]["bytes"] == PHOTOS[0].image and rows[0]["owner_name"] == "Zoë" and rows[0]["width"] == 451
    required = {"photo_id", "owner_nsid", "owner_name", "title", "license_name", "license_url", "page_url",
                "download_url", "date_taken", "date_uploaded", "width", "height", "original_width",
                "original_height", "sha256", "phash", "image"}
    assert required <= set(table.column_names)


def test_every_format_records_the_canonical_license_and_the_source_words():
    licensed = photo("9", image=b"x", license_name="CC BY 2.0", license_url="https://creativecommons.org/licenses/by/2.0/",
                     license_source_text="Attribution License",
                     license_source_url="http://creativecommons.org/licenses/by/2.0/")
    want = {"license_name": "CC BY 2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/",
            "license_source_text": "Attribution License",
            "license_source_url": "http://creativecommons.org/licenses/by/2.0/"}
    row = pq.read_table(io.BytesIO(written(formats.write_parquet, [licensed]))).to_pylist()[0]
    assert {name: row[name] for name in want} == want
    with tarfile.open(fileobj=io.BytesIO(written(formats.write_webdataset, [licensed]))) as tar:
        meta = json.loads(tar.extractfile("9.json").read())
    assert {name: meta[name] for name in want} == want
    example = example_pb2.Example()
    example.ParseFromString(formats.photo_example(licensed))
    features = {key: value.bytes_list.value[0].decode() for key, value in example.features.feature.items()
                if key.startswith("license")}
    assert features == {"license": "CC BY 2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/",
                        "license_source_text": "Attribution License",
                        "license_source_url": "http://creativecommons.org/licenses/by/2.0/"}


def test_empty_parquet_is_valid():
    assert pq.read_table(io.BytesIO(written(formats.write_parquet, []))).num_rows == 0


def test_tfrecord_parses_with_official_example_proto(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(written(formats.write_tfrecord, PHOTOS))
    with local_pipeline() as p:
        records = p | beam.io.ReadFromTFRecord(str(path))  # verifies the masked CRCs of every record

        def features(record: bytes):
            example = example_pb2.Example()
            example.ParseFromString(record)
            f = example.features.feature
            return (f["image/id"].bytes_list.value[0].decode(), f["image/height"].int64_list.value[0],
                    f["image/width"].int64_list.value[0], f["image/format"].bytes_list.value[0],
                    f["creator"].bytes_list.value[0].decode(), len(f["image/encoded"].bytes_list.value[0]),
                    f["license"].bytes_list.value[0].decode(), f["page_url"].bytes_list.value[0].decode())

        assert_that(records | beam.Map(features), equal_to([
            ("12", 300, 451, b"jpeg", "Zoë", len(PHOTOS[0].image), "Attribution License",
             "https://www.flickr.com/photos/z/12/"),
            ("345", 341, 512, b"jpeg", "Owner", len(PHOTOS[1].image), "Attribution License", ""),
        ]))


@given(st.dictionaries(st.text(min_size=1, max_size=20),
                       st.one_of(st.binary(max_size=300), st.text(max_size=50), st.integers(-2**63, 2**63 - 1)),
                       max_size=8))
def test_decode_example_reads_back_what_encode_example_writes(features):
    decoded = formats.decode_example(formats.encode_example(features))
    assert decoded == {key: value.encode("utf-8") if isinstance(value, str) else value
                       for key, value in features.items()}


def _entry(key: str, *values: bytes) -> bytes:
    field = formats._field
    return field(1, field(1, key.encode()) + field(2, field(1, b"".join(field(1, value) for value in values))))


@pytest.mark.parametrize("hostile", [
    b"\x08\x01", b"\x0a\xff", b"\x0a\x05ab", b"\x0a" + b"\xff" * 11,
    # a BytesList of two images, the second the one image/sha256 names: TensorFlow reads both, verify read one
    formats._field(1, _entry("image/encoded", b"other", b"good")),
    formats._field(1, _entry("image/id", b"1") + _entry("image/id", b"2")),  # a key twice
    formats._field(1, _entry("image/id", b"1")) * 2,  # Features twice
])
def test_decode_example_refuses_what_encode_example_never_writes(hostile):
    with pytest.raises(ValueError):
        formats.decode_example(hostile)


@given(st.dictionaries(st.text(min_size=1, max_size=20),
                       st.one_of(st.binary(max_size=300), st.text(max_size=50), st.integers(-2**63, 2**63 - 1)),
                       max_size=8))
def test_example_encoder_matches_protobuf(features):
    example = example_pb2.Example()
    example.ParseFromString(formats.encode_example(features))
    for key, value in features.items():
        feature = example.features.feature[key]
        if isinstance(value, int):
            assert list(feature.int64_list.value) == [value]
        else:
            expected = value.encode() if isinstance(value, str) else value
            assert list(feature.bytes_list.value) == [expected]
    assert set(example.features.feature.keys()) == set(features)


def test_parquet_has_no_map_column_and_stores_the_image_as_hf_does():
    """HF `datasets` has no dtype for an Arrow map, and decodes an image column only when it is
    struct<bytes, path> declared an Image feature in the schema's "huggingface" metadata."""
    table = pq.read_table(io.BytesIO(written(formats.write_parquet, PHOTOS)))
    assert not any(pa.types.is_map(field.type) for field in table.schema)
    assert table.schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"}
    rows = table.to_pylist()
    assert rows[0]["image"] == {"bytes": PHOTOS[0].image, "path": "12.jpg"}
    assert rows[0]["scores"] == [{"detector": "", "class": "face", "score": 0.1}]


def test_scores_are_detector_class_score_entries():
    scores = (("centerface.face", 0.25), ("open_nsfw.nsfw", 0.5), ("open_nsfw.sfw", 0.5))
    assert formats.score_entries(scores) == [
        {"detector": "centerface", "class": "face", "score": 0.25},
        {"detector": "open_nsfw", "class": "nsfw", "score": 0.5},
        {"detector": "open_nsfw", "class": "sfw", "score": 0.5}]


@given(st.dictionaries(st.text(max_size=12), st.floats(allow_nan=False), max_size=6))
def test_score_entries_round_trip_exactly(scores):
    named = tuple(sorted(scores.items()))
    assert formats.scores_from_entries(formats.score_entries(named)) == named
    table = pq.read_table(io.BytesIO(written(formats.write_parquet, [photo("1", scores=named)])))
    assert formats.scores_from_entries(table.column("scores")[0].as_py()) == named


def test_webdataset_json_holds_the_parquet_fields_not_where_the_row_was_read():
    """One photo read from another file, line or release gives the same tar: KEY.json named the row's FILE:LINE
    (`source_ref`), so the same rows in files named, ordered or split otherwise gave other tar bytes (Parquet and
    TFRecord were the same), and a carried photo's changed with its place in the previous release."""
    base = PHOTOS[0]
    read_elsewhere = [base.replace(source_ref=ref) for ref in ("", "yfcc-demo.tsv:4", "part-b.tsv:15",
                                                               "2026-11/parquet/pass-00001-of-00008.parquet:3")]
    tars = {written(formats.write_webdataset, [one]) for one in read_elsewhere}
    assert len(tars) == 1
    with tarfile.open(fileobj=io.BytesIO(tars.pop())) as tar:
        meta = json.loads(tar.extractfile("12.json").read())
    assert set(meta) == set(formats.PARQUET_SCHEMA.names) - {"image"}


def test_webdataset_json_scores_have_the_parquet_shape():
    data = written(formats.write_webdataset, [photo("7", image=b"x", scores=(("ssd.person", 0.5),))])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        meta = json.loads(tar.extractfile("7.json").read())
    assert meta["scores"] == [{"detector": "ssd", "class": "person", "score": 0.5}]


def test_writers_are_ended_when_a_record_cannot_be_read():
    """A failed read ends every writer before the error goes on (their files stay unpublished): a Parquet or tar
    writer left open ends itself later, into a file already closed."""
    def two_then_fail():
        yield from PHOTOS[:2]
        raise OSError("staged image gone")

    for write, ending in ((formats.write_parquet, b"PAR1"), (formats.write_webdataset, b"\0" * 1024)):
        handle = io.BytesIO()
        with pytest.raises(OSError, match="staged image gone"):
            write(handle, two_then_fail())
        assert handle.getvalue().endswith(ending), write.__name__


def test_the_tfrecord_creator_is_whom_attribution_credits():
    """A name that shows nothing (empty, zero-width spaces) is credited to the owner's Flickr id in ATTRIBUTION.csv;
    the TFRecord's `creator` held the raw name, a credit to no one."""
    from pipeline.io.attribution import attribution_row

    for name, credited in (("", "99@N01"), ("\u200b\u200b", "99@N01"), ("Zoë", "Zoë")):
        kept = photo("9", image=b"x", owner_name=name, owner_nsid="99@N01")
        example = example_pb2.Example()
        example.ParseFromString(formats.photo_example(kept))
        creator = example.features.feature["creator"].bytes_list.value[0].decode()
        assert creator == credited == attribution_row(kept)[1]
    # a table's row (no owner id): the account its Flickr page names, as ATTRIBUTION.csv credits it
    kept = photo("9", image=b"x", owner_name="", owner_nsid="", page_url="https://www.flickr.com/photos/77@N02/9/")
    example = example_pb2.Example()
    example.ParseFromString(formats.photo_example(kept))
    assert example.features.feature["creator"].bytes_list.value[0].decode() == "77@N02" == attribution_row(kept)[1]


def test_the_dataset_keeps_the_sources_text_that_published_text_files_drop():
    """ATTRIBUTION.csv and the Markdown and HTML drop what a reader of a text file would not see as written (bidi
    formatting, tag characters but a flag's, combining marks past a few on a character); the dataset's own records
    (Parquet, WebDataset, TFRecord) are the source's metadata and keep them, as they came."""
    hidden = "".join(chr(0xE0000 + ord(char)) for char in "this photo is CC0")
    zalgo = "".join(chr(0x300 + index % 0x70) for index in range(300))
    title, name = f"Loch\u202e{hidden} N{zalgo}ess", f"Ann\u2067{hidden}"
    kept = photo("9", image=b"x", title=title, owner_name=name)
    row = pq.read_table(io.BytesIO(written(formats.write_parquet, [kept]))).to_pylist()[0]
    assert (row["title"], row["owner_name"]) == (title, name)
    with tarfile.open(fileobj=io.BytesIO(written(formats.write_webdataset, [kept]))) as tar:
        meta = json.loads(tar.extractfile("9.json").read())
    assert (meta["title"], meta["owner_name"]) == (title, name)
    example = example_pb2.Example()
    example.ParseFromString(formats.photo_example(kept))
    assert [example.features.feature[key].bytes_list.value[0].decode() for key in ("title", "creator")] == [title, name]
