import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.stages.license import FilterLicense, is_cc_by, license_rejection
from tests.conftest import local_pipeline, photo


@pytest.mark.parametrize("name,url", [
    ("", "http://creativecommons.org/licenses/by/2.0/"),
    ("", "https://creativecommons.org/licenses/by/4.0/"),
    ("", "https://www.creativecommons.org/licenses/by/4.0"),
    ("Attribution License", ""),
    ("CC BY 2.0", ""),
    ("cc  by 4.0", ""),
    ("CC-BY-4.0", ""),  # SPDX identifiers, as generic tables (sources/table.py) often give them
    ("cc-by-2.0", ""),
    # the deed and legal code pages Creative Commons links to, and its chooser's query: a table exported with them
    # lost every row as not_cc_by
    ("", "https://creativecommons.org/licenses/by/4.0/deed.en"),
    ("", "https://creativecommons.org/licenses/by/4.0/deed.zh-hans"),
    ("", "http://creativecommons.org/licenses/by/2.0/legalcode"),
    ("", "https://creativecommons.org/licenses/by/4.0/legalcode.fr/"),
    ("", "https://creativecommons.org/licenses/by/4.0/?ref=chooser-v1"),
    ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/deed.en#ref-appropriate-credit"),
])
def test_cc_by_accepted(name, url):
    assert is_cc_by(name, url)


@pytest.mark.parametrize("name,url", [
    ("Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/"),
    ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/"),
    ("Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/"),
    ("Attribution License", "http://creativecommons.org/licenses/by-nc/2.0/"),  # the URL decides
    ("", "http://creativecommons.org/licenses/by/3.0/"),
    ("All Rights Reserved", ""),
    ("CC BY 3.0", ""),  # only the versions Flickr offers (license ids 4 and 11)
    ("CC-BY-3.0", ""),
    ("CC-BY-NC-4.0", ""),
    ("CC-BY-SA-2.0", ""),
    ("", ""),
    ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    ("", "https://creativecommons.org/licenses/by-nc/4.0/deed.en"),  # another licence's deed stays that licence
    ("", "https://creativecommons.org/licenses/by-sa/2.0/legalcode"),
    ("", "https://creativecommons.org/licenses/by/4.0/deed.en/extra/"),  # a page below the deed is no licence
    ("", "https://example.org/licenses/by/4.0/deed.en"),  # only creativecommons.org's pages
    ("", "https://creativecommons.org/licenses/by/4.0/deedless"),
])
def test_everything_else_rejected(name, url):
    assert not is_cc_by(name, url)


def test_video_rejected_even_when_cc_by():
    rejection = license_rejection(photo("5", marker=1))
    assert rejection and rejection.reason == "video"


def test_rejection_carries_the_license_as_detail():
    rejection = license_rejection(photo("5", license_name="Attribution-ShareAlike License",
                                        license_url="http://creativecommons.org/licenses/by-sa/2.0/"))
    assert rejection.reason == "not_cc_by" and "by-sa" in rejection.detail and rejection.stage == "license"


def test_a_long_licence_name_and_url_are_cut_in_the_detail_as_a_conflict_s_are():
    """A not-CC-BY row's licence name and URL (a source allows tens of kB each) were copied whole into its rejection."""
    name, url = "N" * 60_000, "https://example.com/" + "u" * 8_000
    rejection = license_rejection(photo("5", license_name=name, license_url=url))
    assert rejection.reason == "not_cc_by" and rejection.detail == f"{name[:100]} | {url[:200]}"


def test_stage_splits_kept_and_rejected():
    photos = [photo("1"), photo("2", license_url="http://creativecommons.org/licenses/by-nc/2.0/"),
              photo("3", marker=1)]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | FilterLicense()
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason)),
                    equal_to([("2", "not_cc_by"), ("3", "video")]), label="rejected")


@pytest.mark.parametrize("name", ["All Rights Reserved", "Attribution-NonCommercial License",
                                  "Attribution-NoDerivs License", "CC BY 4.0", "Attribution", "no idea"])
def test_a_row_whose_licence_name_contradicts_its_cc_by_url_is_a_conflict_not_cc_by(name):
    """The URL decided alone: 'All Rights Reserved' beside the CC BY 2.0 URL was kept as CC BY 2.0 and its words
    published in license_source_text. Either half contradicting the other is no evidence of CC BY (a name no table
    knows included; 4.0's name beside 2.0's URL: which version would the attribution state?)."""
    from pipeline.flickr.licenses import canonical_license

    url = "http://creativecommons.org/licenses/by/2.0/"
    canonical = canonical_license(name, url)
    row = photo("1", license_name=canonical[0], license_url=canonical[1], license_source_text=name,
                license_source_url=url)
    rejection = license_rejection(row)
    assert rejection is not None and (rejection.reason, rejection.detail) == ("license_conflict", f"{name} | {url}")


@pytest.mark.parametrize(("name", "url"), [("Attribution License", "http://creativecommons.org/licenses/by/2.0/"),
                                           ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
                                           ("cc-by-2.0", "HTTPS://www.creativecommons.org/licenses/by/2.0"),
                                           ("", "http://creativecommons.org/licenses/by/2.0/"), ("CC BY 4.0", "")])
def test_a_row_whose_licence_words_agree_or_stand_alone_is_no_conflict(name, url):
    from pipeline.flickr.licenses import canonical_license

    canonical = canonical_license(name, url)
    row = photo("1", license_name=canonical[0], license_url=canonical[1], license_source_text=name,
                license_source_url=url)
    assert license_rejection(row) is None
