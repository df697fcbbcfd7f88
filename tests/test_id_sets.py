"""Sets of photo ids held as numbers where they are one (`IdSet`, `IdCount`), against a set and a Counter of text."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from pipeline.release.id_sets import IdCount, IdList, IdSet

# Ids as a release's files may give them: numbers (a few, so that sets share some), other spellings of them (leading
# zeros, spaces, signs), zero, the largest number held as one and the least that is not, ids over 64 bits, digits of
# other scripts (which str.isdigit takes), a carried row's place, any other text, the empty id.
_IDS = st.one_of(
    st.integers(1, 30).map(str),
    st.integers(0, 30).map(lambda number: f"0{number}"),
    st.sampled_from(["0", "00", "", " 7", "7 ", "+7", "-7", "7.0", "9999999999999999999", "10000000000000000000",
                     "18446744073709551615", "18446744073709551616", "99999999999999999999", "\u0663", "\u00b2",
                     "7\u0663", "r1/parquet/pass-00000-of-00001.parquet:3"]),
    st.text(max_size=4),
)


@given(st.lists(_IDS), st.lists(_IDS), st.lists(st.one_of(_IDS, st.none())))
def test_an_id_set_is_the_set_of_its_ids(first, second, probes):
    ids, others = IdSet.of(first), IdSet.of(second)
    texts, other_texts = set(first), set(second)
    for held, oracle in ((ids, texts), (ids - others, texts - other_texts), (ids & others, texts & other_texts),
                         (others - ids, other_texts - texts)):
        assert sorted(held) == sorted(oracle) and len(held) == len(oracle) and bool(held) == bool(oracle)
        assert held.least(3) == sorted(oracle)[:3]
    assert [probe in ids for probe in probes] == [probe in texts for probe in probes]
    assert ids.holds_each(probes) == [probe in texts for probe in probes]


@given(st.lists(_IDS), st.integers(0, 20))
def test_an_id_count_tells_the_ids_there_more_than_once(read, split):
    """Read over files (each file's count extended into the release's), as verify reads a format."""
    found, rest = IdCount(), IdCount()
    found.add_each(read[:split])
    rest.add_each(read[split:])
    found.extend(rest)
    counted = Counter(read)
    ids, twice = found.counted()
    assert sorted(ids) == sorted(counted) and len(ids) == len(counted)
    assert sorted(twice) == sorted(photo_id for photo_id, count in counted.items() if count > 1)
    assert sorted(found.ids()) == sorted(counted)


def test_an_id_past_two_to_the_53_is_found_among_its_neighbours():
    """numpy compared a Python int that fits an int64 with the set's unsigned 64-bit numbers as floats: past 2**53
    (float's whole numbers), of ids 1 apart `in` said all but the first was not in the set."""
    from pipeline.release.id_sets import IdCount

    ids = [str(2**62 + i) for i in range(1, 4)] + [str(2**53 + 1), "9999999999999999999", "7"]
    counted = IdCount()
    counted.add_each(ids)
    held = counted.ids()
    assert [photo_id in held for photo_id in ids] == [True] * len(ids) and str(2**62) not in held
    assert held.holds_each(ids) == [True] * len(ids)


@given(st.lists(_IDS), st.integers(1, 5), st.integers(-8, 8), st.integers(-8, 8))
def test_an_id_list_is_the_list_of_its_ids(read, size, start, stop):
    """ATTRIBUTION.csv's ids in the order read, as numbers where they are one: each, any slice and its parts are the
    list's; counted, they are what the list gives."""
    ids = IdList(read)
    assert list(ids) == read and len(ids) == len(read)
    assert [ids[at] for at in range(-len(read), len(read))] == read + read
    assert ids[start:stop] == read[start:stop] and ids[start:stop:2] == read[start:stop:2]
    assert [photo_id for part in ids.parts(size) for photo_id in part] == read
    assert [len(part) for part in ids.parts(size)] == [len(read[at:at + size]) for at in range(0, len(read), size)]
    as_list, as_numbers = IdCount(), IdCount()
    as_list.add_each(read)
    as_numbers.add_each(ids)
    assert [sorted(found) for found in as_numbers.counted()] == [sorted(found) for found in as_list.counted()]
