"""The one shape every stage has: a DoFn whose main output is kept records and whose tagged
output `rejected` carries `Rejection`s, wrapped so that an unexpected exception becomes a
rejection too (reason `internal_error`) instead of failing the whole job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import pvalue

from pipeline.records import Photo, Rejection


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


class StageOutput(NamedTuple):
    kept: beam.PCollection
    rejected: beam.PCollection


def reject(rejection: Rejection) -> pvalue.TaggedOutput:
    """What a stage's DoFn yields for a record it drops."""
    return pvalue.TaggedOutput(REJECTED, rejection)


def _refs_of(element: Any) -> list[tuple[str, str]]:
    """(id, source_ref) of every record inside the element a DoFn failed on: a Photo, a batch
    of them, a (key, Photo) pair, a (key, grouped Photos) pair or a (file:line, raw line) pair,
    so that a failed batch or group still accounts for each record it held."""
    if isinstance(element, Photo):
        return [(element.ref, element.source_ref)]
    if isinstance(element, (str, bytes)):
        return [(str(element)[:200], "")]
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[0], str):
        key, value = element
        return [(key, key)] if isinstance(value, bytes) else _refs_of(value)
    if isinstance(element, Iterable):
        return [ref for item in element for ref in _refs_of(item)]
    return [(repr(element)[:200], "")]


def failure_to_rejections(stage: str) -> Callable[[Any], list[Rejection]]:
    def convert(failure: Any) -> list[Rejection]:
        element, (_exc_type, exc_message, _traceback) = failure
        detail = str(exc_message)[:1000]  # Beam passes repr(exception): "ValueError('boom')"
        return [Rejection(photo_id, stage, "internal_error", detail, "", ref) for photo_id, ref in _refs_of(element)]

    return convert


def apply_stage(pcoll: beam.PCollection, stage: str, dofn: beam.DoFn, *args: Any, label: str = "",
                **kwargs: Any) -> StageOutput:
    """Apply `dofn` as stage `stage`: kept records out of the main output, every drop, expected
    or not, as a `Rejection` naming the stage. `label` names the steps when one stage has several."""
    label = label or stage
    result = pcoll | f"{label}.apply" >> beam.ParDo(dofn, *args, **kwargs).with_outputs(
        REJECTED, main=KEPT
    ).with_exception_handling(main_tag=KEPT, dead_letter_tag=FAILED)
    failures = result[FAILED] | f"{label}.failures" >> beam.FlatMap(failure_to_rejections(stage))
    rejected = (result[REJECTED], failures) | f"{label}.rejections" >> beam.Flatten()
    return StageOutput(result[KEPT], rejected)
