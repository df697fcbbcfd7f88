"""records.py's photo ids, survivor rank and the shards' photo order, for any id text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import BadPhotoId, Photo, canonical_photo_id, survivor_rank


@given(st.text(alphabet="0123456789²①٣x", max_size=6))
def test_ranks_and_orders_of_any_id_never_raise_and_read_only_ascii_digits(photo_id):
    """`int(id) if id.isdigit()` ended a sort with a ValueError on '²' (isdigit() is true of it) and read '٣' as 3."""
    from pipeline.io.sinks import photo_order

    photo = Photo(photo_id=photo_id)
    number = int(photo_id) if photo_id and set(photo_id) <= set("0123456789") else None
    assert survivor_rank(photo)[2] == (float("inf") if number is None else number)
    assert photo_order(photo) == (-1 if number is None else number, photo_id)


@pytest.mark.parametrize(("given_id", "canonical"), [
    ("0009223372036854775807", "9223372036854775807"),  # 22 characters, 19 digits
    ("0" * 44 + "9" * 20, "9" * 20),  # 64 characters, 20 digits
    ("007", "7"),
])
def test_an_id_of_at_most_20_digits_is_read_however_many_zeros_pad_it(given_id, canonical):
    """README promises any id of up to 20 digits: its length was checked before the leading zeros went, so a
    zero-padded 19-digit id was `bad_id`."""
    assert canonical_photo_id(given_id) == canonical


@pytest.mark.parametrize("given_id", ["1" * 21, "0" + "1" * 21, "0" * 45 + "1" * 20, "0" * 65, "0" * 10**6])
def test_an_id_of_more_than_20_digits_or_more_than_64_characters_is_bad(given_id):
    with pytest.raises(BadPhotoId) as refused:
        canonical_photo_id(given_id)
    assert refused.value.reason == "bad_id" and len(str(refused.value)) < 200


def test_a_value_is_named_in_words_not_by_its_python_type():
    """Rejections said "column 'title' holds a int" (or a Decimal, a datetime): Python's names for what a JSON or
    Parquet cell held."""
    import datetime as dt
    import decimal

    from pipeline.records import value_kind

    named = [value_kind(value) for value in (True, 1.5, decimal.Decimal("1.5"), 7, b"x", dt.datetime(2020, 1, 2),
                                             dt.date(2020, 1, 2), None, {}, [])]
    assert named == ["true/false value", "decimal number", "decimal number", "whole number", "byte string",
                     "date and time", "date", "null", "JSON object", "list"]
