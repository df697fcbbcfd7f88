"""The one shape every stage has: a DoFn whose main output is kept records and whose tagged
output `rejected` carries `Rejection`s, wrapped so that an unexpected exception becomes a
rejection too (reason `internal_error`) instead of failing the whole job.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
from apache_beam import pvalue

from pipeline import beam_memo, beam_workers, gc_tuning
from pipeline.records import Photo, Rejection

# Every job builds its stages from this module: Beam's hottest repeated computations are memoised
# for all of them, and young garbage collections made rarer, here and in worker processes that
# import it (see beam_memo and gc_tuning); local worker processes are stopped together (beam_workers).
beam_memo.install()
beam_workers.install()
gc_tuning.install()


class _QuietTagWarning(logging.Filter):
    """Beam 2.77 warns that tags given to with_outputs() are undeclared whenever a ParDo has both
    tagged outputs and with_exception_handling() (the wrapper declares only its dead-letter tag).
    The tags work; the warning, once per stage, would only drown real ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requested in with_outputs() but not declared" not in str(record.msg)


logging.getLogger().addFilter(_QuietTagWarning())

KEPT = "kept"
REJECTED = "rejected"
FAILED = "failed"
T = TypeVar("T")


class StageOutput(NamedTuple):
    kept: beam.PCollection
    rejected: beam.PCollection


def best_and_rest(group: Iterable[T], key: Callable[[T], Any]) -> tuple[T, Iterator[T]]:
    """A group's value with the smallest key (the first of equals) and an iterator over all the
    others, in two passes over the group, never a list of it: a GroupByKey's values can be iterated
    again (on Dataflow they are paged in from the shuffle), and a blank image shared by 10^5 uploads
    is one group of 10^5 photos. `group` must be re-iterable in the same order.

    The best is met again by its place in the group, not by its key: a key holding a NaN (a carried row's score)
    equals no key, not even its own recomputed from a value decoded afresh (as a paged group's are), and the best
    was then also among the rest: kept and rejected as a repeat of itself."""
    best_place, best = min(enumerate(group), key=lambda placed: key(placed[1]))

    def rest() -> Iterator[T]:
        for place, value in enumerate(group):
            if place != best_place:
                yield value

    return best, rest()


class Tagged:
    """The values of one tag in a group of (tag, value) pairs, iterable again and again in the same order (a
    GroupByKey's values are; a CoGroupByKey's are lists of each tag's values, a whole group held at once)."""

    def __init__(self, group: Iterable[tuple[str, Any]], tag: str) -> None:
        self._group, self._tag = group, tag

    def __iter__(self) -> Iterator[Any]:
        return (value for tag, value in self._group if tag == self._tag)


def reject(rejection: Rejection) -> pvalue.TaggedOutput:
    """What a stage's DoFn yields for a record it drops."""
    return pvalue.TaggedOutput(REJECTED, rejection)


# The tag of a pair (REFERENCE, photo) in a stage's element: a record an earlier stage decided, taking part only as a
# reference (unique_id's rows refused for their licence). A failed element's accounting leaves it out: its row is
# accounted already, and naming it again would put it in the rejections twice.
REFERENCE = "reference"


def _photos_in(element: Any) -> Iterator[Photo]:
    """Every Photo inside an element: itself, a batch, a (key, Photo) pair, a (key, grouped Photos)
    pair, or a CoGroupByKey result (key, {tag: records}) whose other tags hold non-Photo values; never one in a
    (REFERENCE, photo) pair."""
    if isinstance(element, tuple) and len(element) == 2 and element[0] == REFERENCE:
        return
    if isinstance(element, Photo):
        yield element
    elif isinstance(element, Mapping):
        for value in element.values():
            yield from _photos_in(value)
    elif isinstance(element, Iterable) and not isinstance(element, (str, bytes)):
        for item in element:
            yield from _photos_in(item)


def _refs_of(element: Any) -> list[tuple[str, str]]:
    """(id, source_ref) of every input record inside the element a DoFn failed on, so that a failed
    batch or group still accounts for each record it held: its Photos, else a (file:line, raw line)
    pair, else the element itself (a record of no known shape)."""
    photos = list(_photos_in(element))
    if photos:
        return [(photo.ref, photo.source_ref) for photo in photos]
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[0], str) \
            and isinstance(element[1], bytes | dict):  # a (file:line, raw line) or a release's (shard:row, row)
        return [(element[0], element[0])]
    if isinstance(element, (str, bytes)):
        return [(str(element)[:200], "")]
    return [(without_addresses(repr(element))[:200], "")]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def without_addresses(text: str) -> str:
    """An error message the same in every run: without the object addresses messages and reprs carry (Pillow's
    'cannot identify image file <_io.BytesIO object at 0x7f...>'), which made rejection details differ run to run."""
    return _ADDRESS.sub("", text)


def failure_to_rejections(stage: str) -> Callable[[Any], list[Rejection]]:
    def convert(failure: Any) -> list[Rejection]:
        element, (_exc_type, exc_message, _traceback) = failure
        detail = without_addresses(str(exc_message))[:1000]  # Beam passes repr(exception): "ValueError('boom')"
        return [Rejection(photo_id, stage, "internal_error", detail, "", ref) for photo_id, ref in _refs_of(element)]

    return convert


# Per pipeline, a weak reference to its one empty PCollection (see `empty`): weak both ways, since
# a PCollection refers to its pipeline, and a strong value would keep every test's pipeline alive.
_EMPTY: weakref.WeakKeyDictionary[beam.Pipeline, weakref.ref] = weakref.WeakKeyDictionary()


def empty(pipeline: beam.Pipeline) -> beam.PCollection:
    """The pipeline's one empty PCollection: the kept or rejected side of a stage that is switched
    off. Shared, because each `beam.Create([])` is four transforms that Beam builds, translates
    and runs (a dozen of them made a fifth of a default job's transforms). Flatten through
    `flatten`, which lists it once however many switched-off stages hand it in."""
    known = _EMPTY.get(pipeline)
    nothing = known() if known is not None else None
    if nothing is None:
        nothing = pipeline | "Nothing" >> beam.Create([])  # the pipeline's graph holds it from now on
        _EMPTY[pipeline] = weakref.ref(nothing)
    return nothing


def distinct(pcolls: Iterable[beam.PCollection]) -> list[beam.PCollection]:
    """The distinct PCollections among `pcolls`, in order: the shared empty one (`empty`) may come more than once."""
    return list({id(pcoll): pcoll for pcoll in pcolls}.values())


def flatten(pcolls: Iterable[beam.PCollection], label: str) -> beam.PCollection:
    """`beam.Flatten` of the distinct PCollections among `pcolls`: the shared empty one (`empty`) may
    come more than once, and a Flatten given one PCollection twice would emit its elements twice."""
    return distinct(pcolls) | label >> beam.Flatten()


def apply_stage_with_outputs(pcoll: beam.PCollection, stage: str, dofn: beam.DoFn, extra_tags: Sequence[str],
                             *args: Any, label: str = "", **kwargs: Any) -> tuple[StageOutput, dict[str, Any]]:
    """`apply_stage` for a DoFn that also yields to `extra_tags` (e.g. photos held for review):
    returns the stage's output and {tag: PCollection}."""
    label = label or stage
    result = pcoll | f"{label}.apply" >> beam.ParDo(dofn, *args, **kwargs).with_outputs(
        REJECTED, *extra_tags, main=KEPT
    ).with_exception_handling(main_tag=KEPT, dead_letter_tag=FAILED)
    failures = result[FAILED] | f"{label}.failures" >> beam.FlatMap(failure_to_rejections(stage))
    rejected = (result[REJECTED], failures) | f"{label}.rejections" >> beam.Flatten()
    return StageOutput(result[KEPT], rejected), {tag: result[tag] for tag in extra_tags}


def apply_stage(pcoll: beam.PCollection, stage: str, dofn: beam.DoFn, *args: Any, label: str = "",
                **kwargs: Any) -> StageOutput:
    """Apply `dofn` as stage `stage`: kept records out of the main output, every drop, expected
    or not, as a `Rejection` naming the stage. `label` names the steps when one stage has several."""
    output, _ = apply_stage_with_outputs(pcoll, stage, dofn, (), *args, label=label, **kwargs)
    return output


def apply_keyed_stage(photos: beam.PCollection, stage: str, key: Callable[[Photo], str], dofn: beam.DoFn,
                      label: str = "") -> StageOutput:
    """The shape of every stage that decides among photos sharing a key (an id, an owner, a hash):
    key -> GroupByKey -> `dofn` over (key, photos), with `apply_stage`'s accounting."""
    label = label or stage
    # Typed, so that the shuffle encodes each Photo with its registered PhotoCoder instead of pickling it.
    grouped = photos | f"{label}.key" >> beam.Map(lambda photo: (key(photo), photo)).with_output_types(
        tuple[str, Photo]) | f"{label}.group" >> beam.GroupByKey()
    return apply_stage(grouped, stage, dofn, label=label)
