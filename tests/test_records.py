"""records.py's survivor rank and the shards' photo order, for any id text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import Photo, survivor_rank


@given(st.text(alphabet="0123456789²①٣x", max_size=6))
def test_ranks_and_orders_of_any_id_never_raise_and_read_only_ascii_digits(photo_id):
    """`int(id) if id.isdigit()` ended a sort with a ValueError on '²' (isdigit() is true of it) and read '٣' as 3."""
    from pipeline.io.sinks import photo_order

    photo = Photo(photo_id=photo_id)
    number = int(photo_id) if photo_id and set(photo_id) <= set("0123456789") else None
    assert survivor_rank(photo)[2] == (float("inf") if number is None else number)
    assert photo_order(photo) == (-1 if number is None else number, photo_id)
