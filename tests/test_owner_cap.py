import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.records import Photo
from pipeline.sources.table_row import parse_row, table_layout
from pipeline.stages.owner_cap import CapPerOwner, _KeepFirstN, cap_rank
from tests.conftest import local_pipeline, photo


def run_cap(photos, cap):
    kept, rejected = [], []
    for out in _KeepFirstN(cap).process(("owner:o", photos)):
        (rejected if hasattr(out, "tag") else kept).append(out)
    return kept, [tagged.value for tagged in rejected]


@given(st.lists(st.integers(1, 10**9), unique=True, max_size=60), st.integers(1, 20))
@settings(max_examples=60)
def test_heap_keeps_exactly_the_cap_smallest_ranks(ids, cap):
    photos = [photo(str(i)) for i in ids]
    kept, rejected = run_cap(photos, cap)
    oracle = sorted(photos, key=cap_rank)[:cap]
    assert sorted(p.photo_id for p in kept) == sorted(p.photo_id for p in oracle)
    assert len(kept) + len(rejected) == len(photos)
    assert {r.reason for r in rejected} <= {"owner_cap"}


def test_order_of_input_does_not_change_the_choice():
    photos = [photo(str(i)) for i in range(50)]
    forward, _ = run_cap(photos, 7)
    backward, _ = run_cap(list(reversed(photos)), 7)
    assert sorted(p.photo_id for p in forward) == sorted(p.photo_id for p in backward)


def test_stage_caps_per_owner_and_leaves_unknown_owners_alone():
    photos = [photo(str(i), owner_nsid="big@N00") for i in range(10)]
    photos += [photo("100", owner_nsid="small@N00")] + [photo(str(200 + i), owner_nsid="") for i in range(5)]
    expected_big = sorted(sorted(photos[:10], key=cap_rank)[:3], key=lambda p: p.photo_id)
    with local_pipeline() as p:
        out = p | beam.Create(photos) | CapPerOwner(3)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id),
                    equal_to([ph.photo_id for ph in expected_big] + ["100"] + [str(200 + i) for i in range(5)]),
                    label="kept")
        assert_that(out.rejected | beam.combiners.Count.Globally(), equal_to([7]), label="rejected")


def test_a_released_image_is_never_displaced_by_a_new_one_whose_hash_ranks_first():
    """At the cap, a released image stays and the new one leaves even where the new one's id hash ranks first: with
    released images ranked after new ones, a refresh dropped the published image for the new upload."""
    ranked = sorted(("1", "2", "3", "4"), key=lambda i: cap_rank(photo(i)))
    new, released = photo(ranked[0]), photo(ranked[-1], first_release="2026-10")
    for order in ([new, released], [released, new]):
        kept, rejected = run_cap(order, 1)
        assert [p.photo_id for p in kept] == [released.photo_id]
        assert [r.photo_id for r in rejected] == [new.photo_id]


def test_cap_zero_disables():
    with local_pipeline() as p:
        out = p | beam.Create([photo(str(i)) for i in range(5)]) | CapPerOwner(0)
        assert_that(out.kept | beam.combiners.Count.Globally(), equal_to([5]))


def test_an_evicted_photo_is_rejected_at_once_not_held_until_the_account_ends():
    """Memory is O(cap) photos however large the account: each eviction's rejection comes out while the
    owner's photos are still being read (they were collected in a list until the end: x4 memory per x4
    photos, measured)."""
    import itertools

    read = []

    def account():
        for i in range(1, 1001):
            read.append(i)
            yield photo(str(i), owner_nsid="big@N01")

    outputs = _KeepFirstN(2).process(("owner:big@N01", account()))
    first = next(outputs)
    assert first.tag == "rejected" and first.value.reason == "owner_cap" and len(read) == 3
    rest = list(itertools.chain([first], outputs))
    assert len(read) == 1000 and len(rest) == 1000
    assert sum(1 for item in rest if getattr(item, "tag", None) == "rejected") == 998


def test_one_account_spelt_several_ways_has_one_quota():
    """"7@N01", "7@n01" and "007@N01" are one Flickr account (the takedown list has always read them so): each
    spelling had a quota of its own, three times the cap for one photographer."""
    spellings = ("7@N01", "7@n01", "007@N01")
    photos = [photo(str(10 * n + i), owner_nsid=nsid) for n, nsid in enumerate(spellings, start=1) for i in range(2)]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | CapPerOwner(2)
        assert_that(out.kept | beam.combiners.Count.Globally(), equal_to([2]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.reason, r.detail)),
                    equal_to([("owner_cap", "7@N01 has more than 2 images")] * 4), label="rejected")


def test_a_tables_rows_are_capped_by_the_account_their_flickr_pages_name():
    """A table's rows carry no owner id, only their Flickr page: each was a group of its own, so one photographer's
    photos listed in a table were never capped. The account the page names is their quota (an alias, which only the
    API can resolve, or a page elsewhere still leaves a row its own group)."""
    pages = {str(i): f"https://www.flickr.com/photos/{'7@N01' if i % 2 else '007%40n01'}/{i}/" for i in range(1, 7)}
    pages |= {"50": "https://www.flickr.com/photos/some_alias/50/", "51": "https://www.flickr.com/photos/some_alias/51/",
              "60": "https://images.example.org/60.jpg", "61": "https://images.example.org/61.jpg"}
    photos = [photo(photo_id, owner_nsid="", page_url=page) for photo_id, page in pages.items()]
    account = sorted((p for p in photos if int(p.photo_id) < 50), key=cap_rank)[:2]
    _account_7_capped_at_two(photos, [ph.photo_id for ph in account] + ["50", "51", "60", "61"])


def _account_7_capped_at_two(photos: list[Photo], kept: list[str]) -> None:
    """`photos` through a cap of 2: the ids `kept` pass, and account 7@N01's four others are each its rejection."""
    with local_pipeline() as p:
        out = p | beam.Create(photos) | CapPerOwner(2)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(kept), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.reason, r.detail)),
                    equal_to([("owner_cap", "7@N01 has more than 2 images")] * 4), label="rejected")


def test_a_tables_rows_crediting_an_account_id_in_their_owner_column_are_capped_by_it():
    """A table made from Flickr's search answers credits each photo's account by its id in its `owner` column (the
    answer's `owner`) and gives static URLs, no page: each row was a group of its own, a photographer's 10,000 photos
    never capped, where a takedown by owner kept them all out as one account. The id the owner column credits is the
    row's account where it has no owner id and its page names none; a creator's name that is no account id leaves a
    row its own group, and a page naming an account comes first."""
    layout = table_layout("csv")

    def row(photo_id: int, owner: str, page: str = "") -> Photo:
        parsed = parse_row({"id": str(photo_id), "url": f"https://live.staticflickr.com/65535/{photo_id}_ab_z.jpg",
                            "owner": owner, "page_url": page, "license": "CC BY 4.0"}, f"t.csv:{photo_id}", layout)
        assert isinstance(parsed, Photo)
        return parsed

    photos = [row(i, "7@N01" if i % 2 else " 007@n01") for i in range(1, 7)]
    photos += [row(50, "Jane Doe"), row(51, "Jane Doe"), row(60, "7@N01", "https://www.flickr.com/photos/8@N01/60/"),
               photo("70", owner_nsid="9@N01", owner_name="7@N01")]
    account = sorted(photos[:6], key=cap_rank)[:2]
    _account_7_capped_at_two(photos, [ph.photo_id for ph in account] + ["50", "51", "60", "70"])
