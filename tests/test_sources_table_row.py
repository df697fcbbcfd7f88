"""One table row to a Photo (`sources/table_row.py`): the column mapping, licences, page URLs, and the safety net
for a row that breaks the parser unforeseen."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.sources.table import ReadTable, sniff, table_layout
from pipeline.stages.license import FilterLicense
from tests.conftest import local_pipeline
from tests.test_sources_table import GOOD, THEIRS, read_all, why, write_table

BY_2, BY_4 = "https://creativecommons.org/licenses/by/2.0/", "https://creativecommons.org/licenses/by/4.0/"


LICENCES = [  # (the row's licence in one column that holds a URL or a name, kept as (name, URL) or rejected with)
    ("CC BY 4.0", ("CC BY 4.0", BY_4)),
    ("cc  by 2.0", ("CC BY 2.0", BY_2)),
    ("CC-BY-4.0", ("CC BY 4.0", BY_4)),  # the SPDX spelling
    ("Attribution License", ("CC BY 2.0", BY_2)),  # Flickr's name for CC BY 2.0
    ("https://creativecommons.org/licenses/by/4.0/", ("CC BY 4.0", BY_4)),
    ("HTTP://WWW.CreativeCommons.org/licenses/by/2.0", ("CC BY 2.0", BY_2)),
    ("CC BY 3.0", "CC BY 3.0"),  # only the versions Flickr offers (ids 4 and 11): see README
    ("https://creativecommons.org/licenses/by/3.0/", "https://creativecommons.org/licenses/by/3.0/"),
    ("CC BY-SA 4.0", "CC BY-SA 4.0 | https://creativecommons.org/licenses/by-sa/4.0/"),
    ("CC-BY-NC-4.0", "CC BY-NC 4.0 | https://creativecommons.org/licenses/by-nc/4.0/"),
    ("https://creativecommons.org/licenses/by-nc/2.0/", "CC BY-NC 2.0 | https://creativecommons.org/licenses/by-nc/2.0/"),
    ("All rights reserved", "All Rights Reserved"),
    ("", "no license given"),
]


def test_the_license_stage_decides_each_rows_licence(tmp_path):
    """Each row's license is recorded in its canonical name and https URL, the table's own words beside them (rows
    gave 'cc-by-4.0' with no URL, or an http URL with no name, into ATTRIBUTION.csv), and the license stage decides."""
    rows = [{**GOOD[0], "photo_id": str(number), "licence": licence}
            for number, (licence, _) in enumerate(LICENCES, 1)]
    path = write_table(tmp_path / "meta.csv", "csv", rows)
    kept = [(str(number), *outcome, licence) for number, (licence, outcome) in enumerate(LICENCES, 1)
            if isinstance(outcome, tuple)]
    rejected = [(str(number), "license", "not_cc_by", outcome)
                for number, (_, outcome) in enumerate(LICENCES, 1) if isinstance(outcome, str)]
    with local_pipeline() as p:
        licensed = (p | ReadTable(str(path), table_layout("csv", THEIRS))).kept | FilterLicense()
        assert_that(licensed.kept | beam.Map(lambda photo: (photo.photo_id, photo.license_name, photo.license_url,
                                                            photo.license_source_text + photo.license_source_url)),
                    equal_to(kept), label="kept")
        assert_that(licensed.rejected | beam.Map(lambda r: (*why(r), r.detail)), equal_to(rejected),
                    label="rejected")


def test_a_row_that_breaks_the_parser_unforeseen_is_one_internal_error_and_the_file_goes_on(tmp_path, monkeypatch):
    from pipeline.sources import table_row

    real = table_row.parse_row

    def fragile(values, ref, layout):
        if values["photo_id"] == "11":
            raise KeyError("unforeseen")
        return real(values, ref, layout)

    monkeypatch.setattr(table_row, "parse_row", fragile)
    items = read_all(write_table(tmp_path / "meta.csv", "csv", GOOD), "csv")
    assert [(item.source_ref, getattr(item, "reason", "kept")) for item in items] == [
        ("meta.csv:2", "internal_error"), ("meta.csv:3", "kept")]


@pytest.mark.parametrize("columns,message", [
    ("urll=photo_url", "unknown field 'urll'"),
    ("url=a,url=b", "'url' is mapped twice"),
    ("url", "expected FIELD=COLUMN"),
    ("url=", "expected FIELD=COLUMN"),
])
def test_a_column_mapping_that_cannot_be_understood_is_refused(columns, message):
    with pytest.raises(ValueError, match=message):
        table_layout("csv", columns)


@pytest.mark.parametrize("page", ["javascript:alert(1)", "file:///etc/passwd", "https://p/a b", "https://p/\x1b[2J"])
def test_a_page_url_attribution_could_not_link_to_is_a_bad_field(tmp_path, page):
    """ATTRIBUTION.csv links each photo to its page: only http(s), with no space or control character."""
    items = read_all(write_table(tmp_path / "meta.jsonl", "jsonl", [{**GOOD[0], "page": page}, GOOD[1]]), "jsonl")
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in items] == [("11", "bad_field"), ("12", "kept")]
    assert "'page'" in items[0].detail and "http(s)" in items[0].detail


def test_a_missing_column_no_flag_named_says_how_to_name_one(tmp_path):
    """A newcomer's CSV without a `license` column, no --columns given, was told "no column 'license' (--columns
    license=license)": a flag to give that would change nothing."""
    given = tmp_path / "photos.csv"
    given.write_text("id,url,licence\n1001,http://127.0.0.1:9/1001.jpg,CC BY 4.0\n")
    said = sniff(str(given), table_layout("csv", ""))
    assert "no column 'license', which the required field license is read from" in said, said
    assert "unless --columns names yours (license=YOUR_COLUMN)" in said and "license=license" not in said
    assert "no column 'nope' (--columns url=nope)" in sniff(str(given), table_layout("csv", "url=nope"))
