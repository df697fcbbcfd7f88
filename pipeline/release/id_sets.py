"""Sets of a release's photo ids in little memory (`refresh`'s changelog, `verify`). As Python text a set of 1.44
million ids took ~184 MiB, a Counter of them (verify's, one for each of four formats) ~150 MiB; as sorted 64-bit
numbers they take 11 MiB. An id that is a number's one spelling (ASCII digits, no leading zero, at most 19 of them:
every such number fits in 64 bits) is held as that number; any other text ('007', an id of 20 digits, a carried row's
place, text no run writes) as itself, beside them, so that two spellings of one number stay two ids, as they are to a
set of text. The ids go in and come out as text: what is said of them is what a set of text gives.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

from pipeline.records import id_number as as_number  # verify reads ids so too

_CHUNK = 1 << 16  # numbers made text at a time when a set is iterated


def _numbers(values: array | Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64)


def first_of_each(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the numbers sorted, each once; the index in `numbers` of its first). By a stable sort: np.unique (numpy 2.4)
    took ~75 bytes a number at its peak, ~100 MiB for a release's ids."""
    order = np.argsort(numbers, kind="stable")
    ordered = numbers[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first], order[first]


def _once(numbers: array) -> tuple[np.ndarray, np.ndarray]:
    """(the numbers sorted, each once; whether each of those is there more than once). Sorts `numbers` in place."""
    ordered = np.frombuffer(numbers, dtype=np.uint64) if len(numbers) else _numbers([])
    ordered.sort()
    first = np.ones(len(ordered) + 1, dtype=bool)  # whether each is the first of its number (and one past the end)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:-1])
    once = ordered[first[:-1]]
    return once, ~first[1:][first[:-1]]  # a first followed by no first is there again


def _in(numbers: np.ndarray, sorted_numbers: np.ndarray) -> np.ndarray:
    """Whether each of `numbers` is in `sorted_numbers` (sorted, each once)."""
    if not len(sorted_numbers):
        return np.zeros(len(numbers), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_numbers, numbers), len(sorted_numbers) - 1)
    return sorted_numbers[at] == numbers


class IdSet:
    """A set of photo ids, text in and out: `numbers` (sorted, each once) and `others` (the ids that are no number's
    one spelling). What a set of text does with its ids: length, `in`, `-`, `&`, iteration (numbers first, in numeric
    order, then the others in no order)."""

    __slots__ = ("numbers", "others")

    def __init__(self, numbers: np.ndarray | None = None, others: Iterable[str] = ()) -> None:
        self.numbers = _numbers([]) if numbers is None else numbers
        self.others = set(others)

    @classmethod
    def of(cls, ids: Iterable[str]) -> IdSet:
        if isinstance(ids, IdSet):
            return ids
        found = IdCount()
        found.add_each(ids)
        return found.ids()

    def __len__(self) -> int:
        return len(self.numbers) + len(self.others)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, photo_id: object) -> bool:
        number = as_number(photo_id)
        if number is None:
            return photo_id in self.others
        at = int(np.searchsorted(self.numbers, np.uint64(number)))  # an int64 past 2**53 is compared as a float
        return at < len(self.numbers) and int(self.numbers[at]) == number

    def holds_each(self, ids: Sequence[object]) -> list[bool]:
        """Whether each of `ids` is in the set (`in`, for a batch of them at once)."""
        numbers = [as_number(photo_id) for photo_id in ids]
        found = _in(_numbers([number or 0 for number in numbers]), self.numbers).tolist()  # 0 is none of them
        return [bool(hit) if number is not None else photo_id in self.others
                for photo_id, number, hit in zip(ids, numbers, found, strict=True)]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self.numbers), _CHUNK):
            yield from map(str, self.numbers[start:start + _CHUNK].tolist())
        yield from self.others

    def __sub__(self, other: IdSet) -> IdSet:
        return IdSet(self.numbers[~_in(self.numbers, other.numbers)], self.others - other.others)

    def __and__(self, other: IdSet) -> IdSet:
        return IdSet(self.numbers[_in(self.numbers, other.numbers)], self.others & other.others)

    def least(self, count: int) -> list[str]:
        """The `count` first ids in the order of text (`sorted(ids)[:count]`), without making every id text at once."""
        return heapq.nsmallest(count, self)


class IdList(Sequence[str]):
    """Photo ids in the order read (ATTRIBUTION.csv's, a release's at once), text in and out, 8 bytes an id that is a
    number's one spelling: as a list of text 1.44 million ids took ~100 MiB. `numbers`: each id's number, 0 (no id's:
    '0' spells none) where the id is other text, which `others` holds by its place."""

    __slots__ = ("numbers", "others")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.numbers = array("Q")
        self.others: dict[int, str] = {}
        for photo_id in ids:
            self.append(photo_id)

    def append(self, photo_id: str) -> None:
        number = as_number(photo_id)
        if number is None:
            self.others[len(self.numbers)] = photo_id
        self.numbers.append(number or 0)

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, at: int) -> str: ...

    @overload
    def __getitem__(self, at: slice) -> list[str]: ...

    def __getitem__(self, at: int | slice) -> str | list[str]:
        if isinstance(at, slice):
            start, stop, step = at.indices(len(self.numbers))
            return [str(number) if number else self.others[place] for place, number in
                    zip(range(start, stop, step), self.numbers[start:stop:step].tolist(), strict=True)]
        number = self.numbers[at]
        return str(number) if number else self.others[range(len(self.numbers))[at]]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self.numbers), _CHUNK):
            yield from self[start:start + _CHUNK]

    def parts(self, size: int) -> Iterator[IdList]:
        """The list `size` ids at a time, each part an `IdList` of its own (places counted from its start)."""
        places = list(self.others)  # in the order of places: each was added as its id was
        for start in range(0, len(self.numbers), size):
            part = IdList()
            part.numbers = self.numbers[start:start + size]
            first, last = bisect.bisect_left(places, start), bisect.bisect_left(places, start + size)
            part.others = {place - start: self.others[place] for place in places[first:last]}
            yield part


class IdCount:
    """Photo ids as they are read, each as many times as it is (8 bytes a number), to tell which are there and which
    more than once (a Counter of text, in a fraction of its memory)."""

    def __init__(self) -> None:
        self._numbers = array("Q")
        self._others: Counter[str] = Counter()

    def add(self, photo_id: str) -> None:
        number = as_number(photo_id)
        if number is None:
            self._others[photo_id] += 1
        else:
            self._numbers.append(number)

    def add_numbers(self, numbers: np.ndarray) -> None:
        """Ids that are each a number's one spelling, as those numbers."""
        self._numbers.frombytes(numbers.astype(np.uint64, copy=False).tobytes())

    def add_each(self, ids: Iterable[str]) -> None:
        if isinstance(ids, IdList):  # its numbers as they are, never made text
            numbers = np.frombuffer(ids.numbers, dtype=np.uint64)
            self._numbers.frombytes(numbers[numbers != 0].tobytes() if ids.others else numbers.tobytes())
            self._others.update(ids.others.values())
            return
        for photo_id in ids:
            self.add(photo_id)

    def extend(self, other: IdCount) -> None:
        self._numbers.extend(other._numbers)
        self._others.update(other._others)

    def ids(self) -> IdSet:
        """Each id once."""
        return IdSet(_once(self._numbers)[0], self._others)

    def counted(self) -> tuple[IdSet, IdSet]:
        """(each id once, the ids there more than once)."""
        numbers, twice = _once(self._numbers)
        return (IdSet(numbers, self._others),
                IdSet(numbers[twice], (photo_id for photo_id, count in self._others.items() if count > 1)))
