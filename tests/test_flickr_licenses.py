"""One canonical name and https URL per license, whichever words and scheme the source used."""

import pytest

from pipeline.flickr.licenses import CANONICAL, LICENSES, canonical_license, license_id_of

CC_BY_2 = ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/")
CC_BY_4 = ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")


@pytest.mark.parametrize(("name", "url", "expected"), [
    ("Attribution License", "http://creativecommons.org/licenses/by/2.0/", CC_BY_2),  # YFCC's words
    ("Attribution License", "https://creativecommons.org/licenses/by/2.0/", CC_BY_2),  # Flickr's today
    ("", "HTTP://www.CreativeCommons.org/licenses/by/2.0", CC_BY_2),
    ("Attribution License", "", CC_BY_2),  # no URL: the name decides
    ("cc  by 4.0", "", CC_BY_4),
    ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", CC_BY_4),
    ("Attribution License", "http://creativecommons.org/licenses/by-nc/2.0/",  # the URL decides
     ("CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/")),
])
def test_every_spelling_of_a_license_has_one_canonical_name_and_https_url(name, url, expected):
    assert canonical_license(name, url) == expected


def test_an_unknown_license_is_left_as_the_source_wrote_it():
    assert license_id_of("", "http://creativecommons.org/licenses/by/3.0/") is None
    assert canonical_license("Mine", "http://example.com/l") == ("Mine", "http://example.com/l")
    assert canonical_license("", "") == ("", "")


def test_canonical_table_covers_every_flickr_id_with_https_urls():
    assert set(CANONICAL) == set(LICENSES)
    assert all(url == "" or url.startswith("https://") for _, url in CANONICAL.values())
    assert len({name for name, _ in CANONICAL.values()}) == len(CANONICAL)
    for license_id, (name, url) in LICENSES.items():  # Flickr's own words map back to their id
        assert license_id_of(name, url) == license_id and license_id_of(*CANONICAL[license_id]) == license_id
