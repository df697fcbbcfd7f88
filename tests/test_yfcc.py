import bz2
import gzip

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.records import Photo, Rejection
from pipeline.sources.yfcc import COLUMNS_25, ReadYfcc, parse_line
from tests.conftest import local_pipeline


def test_parses_25_column_line_and_url_decodes_text():
    line = yfcc_line(7, "123", "http://farm1.staticflickr.com/1/123_ab.jpg", owner_name="Jane Doe",
                     title="Sunset at the beach", tags="sea,sun set", description="50% off & more")
    parsed = parse_line(line.encode(), "f.tsv:7")
    assert isinstance(parsed, Photo)
    assert parsed.photo_id == "123"
    assert parsed.owner_name == "Jane Doe"
    assert parsed.title == "Sunset at the beach"
    assert parsed.tags == "sea,sun set"
    assert parsed.description == "50% off & more"
    assert parsed.capture_device == "Canon EOS 5D"
    assert parsed.date_taken == "2013-05-01 10:00:00"
    assert parsed.date_uploaded.endswith("Z") and parsed.date_uploaded.startswith("2013-05-01T")
    assert parsed.source_ref == "f.tsv:7"


def test_plus_means_space_in_raw_dump_text():
    cells = yfcc_line(1, "5", "u").split("\t")
    cells[8] = "sun+set+%26+sea"
    assert parse_line("\t".join(cells).encode(), "f:1").title == "sun set & sea"


def test_parses_23_column_layout():
    cells = yfcc_line(1, "55", "http://x/55_ab.jpg").split("\t")
    cells = [cells[1], *cells[3:]]
    parsed = parse_line("\t".join(cells).encode(), "f.tsv:1")
    assert isinstance(parsed, Photo) and parsed.photo_id == "55" and parsed.download_url == "http://x/55_ab.jpg"


def test_malformed_lines_become_rejections_with_file_and_line():
    cases = {
        b"only\tthree\tcolumns": "wrong_column_count",
        b"": "wrong_column_count",
        yfcc_line(1, "9", "u").encode().replace(b"demo", b"d\xff\xfemo"): "bad_encoding",
        yfcc_line(1, "9", "u").replace("\t9\t", "\t\t", 1).encode(): "missing_id",
        yfcc_line(1, "9", "u").replace("\t9\t", "\tabc\t", 1).encode(): "bad_id",
        yfcc_line(1, "9", "u", marker="x").encode(): "bad_field",
    }
    for raw, reason in cases.items():
        parsed = parse_line(raw, "dump.tsv:42")
        assert isinstance(parsed, Rejection), raw
        assert (parsed.reason, parsed.stage, parsed.source_ref) == (reason, "read", "dump.tsv:42")


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t"), max_size=30)


@given(st.lists(CELL, min_size=1, max_size=40))
def test_parse_never_raises(cells):
    parsed = parse_line("\t".join(cells).encode("utf-8"), "x:1")
    assert isinstance(parsed, (Photo, Rejection))
    if len(cells) not in (23, 25):
        assert isinstance(parsed, Rejection) and parsed.reason == "wrong_column_count"


def test_reads_plain_gzip_bzip2_and_empty_files(tmp_path):
    lines = [yfcc_line(i, str(100 + i), f"http://h/{100 + i}_ab.jpg") for i in range(1, 4)]
    text = ("\n".join(lines) + "\nbroken line\n").encode()
    (tmp_path / "a.tsv").write_bytes(text)
    (tmp_path / "b.tsv.gz").write_bytes(gzip.compress(text.replace(b"\t10", b"\t20")))
    (tmp_path / "c.tsv.bz2").write_bytes(bz2.compress(text.replace(b"\t10", b"\t30")))
    (tmp_path / "d.tsv").write_bytes(b"")
    with local_pipeline() as p:
        read = p | ReadYfcc(str(tmp_path / "*"))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id),
                    equal_to([f"{prefix}{i}" for prefix in ("10", "20", "30") for i in (1, 2, 3)]), label="ids")
        assert_that(read.rejected | beam.Map(lambda r: (r.photo_id, r.reason)),
                    equal_to([(f"{name}:4", "wrong_column_count") for name in ("a.tsv", "b.tsv.gz", "c.tsv.bz2")]),
                    label="rejections")


def test_corrupt_gzip_midway_is_a_rejection_not_a_crash(tmp_path):
    good = "\n".join(yfcc_line(i, str(i), "http://h/x.jpg") for i in range(1, 200)).encode()
    packed = gzip.compress(good)
    (tmp_path / "bad.tsv.gz").write_bytes(packed[: len(packed) // 2])
    with local_pipeline() as p:
        read = p | ReadYfcc(str(tmp_path / "bad.tsv.gz"))
        assert_that(read.rejected | beam.Map(lambda r: (r.stage, r.reason)), equal_to([("read", "unreadable_file")]))


def test_column_names_match_the_documented_layout():
    assert len(COLUMNS_25) == 25 and COLUMNS_25[1] == "photo_id" and COLUMNS_25[-1] == "marker"
