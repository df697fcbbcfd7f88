"""People, faces and NSFW content: every remaining photo goes through each selected ONNX detector
with Beam's `RunInference` (batched, one model per worker process, failures as data), then one
decision per photo:

- a reviewer's decision for this photo id (`--review_decisions`), when there is one, wins (an acceptance only
  for the image the reviewer saw: `reviewer_decisions.applies`);
- otherwise the detectors' scores decide, by the one rule evaluation also uses
  (`pipeline/detectors/decision.py`: the fused human score of `models/fusion.json`, nsfw
  thresholds): rejected `human` or `nsfw`; held for review -> out of the dataset until a reviewer
  accepts it: rejected `needs_review` and written to `review/` with its image;
- otherwise kept, with every detector score stored on the photo (`Photo.scores`).

Detectors run cheapest first (nsfw ones, which are never skipped, then by input size), so that a
photo the cheaper ones already reject as human skips CenterFace, the costliest, and its tiles
(`RuntimeConfig.skip_settled`, `decision.DecisionRule.certainly_human`): the decision is the same
as with every view scored, and a photo so rejected carries only the scores that decided it
(`--detect_every_view` scores it fully). Kept and held photos always carry every score.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import apache_beam as beam
import onnxruntime as ort
import pyarrow as pa
from apache_beam import pvalue
from apache_beam.ml.inference.base import RunInference

from pipeline.decisions_file import Decisions, decisions_of
from pipeline.detectors.decision import HELD, KEPT, DecisionRule, rule_for
from pipeline.detectors.decoders import decoded_classes
from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import (
    CUDA,
    PARTIAL,
    FailedInference,
    OnnxDetectorHandler,
    RuntimeConfig,
    active_provider,
)
from pipeline.detectors.registry import DetectorSpec
from pipeline.detectors.reviewer_decisions import applies, reviewer_rejection
from pipeline.io.work_cache import WriteEntries, split_by_cache
from pipeline.records import Photo, Rejection
from pipeline.stage import KEPT as KEPT_TAG
from pipeline.stage import REJECTED as REJECTED_TAG
from pipeline.stage import apply_stage_with_outputs, failure_to_rejections, reject


class _QuietMemoryWarning(logging.Filter):
    """Beam 2.77's RunInference imports `resource` together with its optional ModelManager; when
    the latter's dependencies are missing it logs, after every batch, that memory usage cannot be
    fetched. Inference is unaffected; the line would bury real warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "memory usage cannot be fetched" not in str(record.msg)


logging.getLogger().addFilter(_QuietMemoryWarning())

STAGE = "detect"
REVIEW = "review"


class DetectOutput(NamedTuple):
    kept: beam.PCollection
    rejected: beam.PCollection
    review: beam.PCollection


def _merge(photo: Photo, scores: dict[str, float]) -> Photo:
    return photo.replace(scores=tuple(sorted((dict(photo.scores) | scores).items())))


class _Scored(Protocol):
    """A PredictionResult as OnnxDetectorHandler makes it (Beam types its fields as bare type variables)."""

    @property
    def example(self) -> Photo: ...
    @property
    def inference(self) -> dict[str, float] | FailedInference: ...
    @property
    def model_id(self) -> str: ...


def _with_scores(result: _Scored) -> Iterator:
    """The photo with this detector's scores; a photo it could not score (alone: handler.FailedInference) is its
    own rejection."""
    if isinstance(result.inference, FailedInference):
        yield reject(Rejection.of(result.example.replace(image=b""), STAGE, "internal_error",
                                  f"{result.model_id}: {result.inference.detail}"))
        return
    yield _merge(result.example, dict(result.inference))


SCORE_SCHEMA = pa.schema([("key", pa.string()), ("scores", pa.string())])


@functools.cache
def _scoring_runtime(device: str) -> tuple[str, str]:
    """What else moves a score's last bits: the onnxruntime release and the execution provider this worker uses
    (CUDA's kernels round differently from the CPU's). A run resumed on another machine or release scores again
    rather than mix the two, which could move a photo across a threshold. The provider is the one a session gets,
    not the one asked for: onnxruntime falls back to the CPU silently where a CUDA build finds no usable GPU."""
    return ort.__version__, active_provider(device)


def score_key(photo: Photo, spec: DetectorSpec, runtime: RuntimeConfig) -> str:
    """The same stored image through the same model file, preprocessing and tiling, on the same onnxruntime and
    provider, gives the same scores: a resumed run takes them from the work cache instead of running the model
    again."""
    parts = [photo.sha256, spec.sha256, dataclasses.asdict(spec.input), spec.decoder, spec.tiles,
             runtime.tile_min_side, *_scoring_runtime(runtime.device)]
    if parts[-1] == CUDA:  # and on CUDA how cuDNN chose its algorithms (they round differently); CPU keys as before
        parts.append(runtime.cudnn_conv_algo_search)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _cached_scores(spec: DetectorSpec) -> Callable[[Photo, dict], Photo | None]:
    """A photo completed from its score cache entry; None (scored again) for an entry that is not one this detector
    writes: a score of another detector's (a changed entry could set any score of the photo), a class it does not
    score, one without a score of a class it decides on or a fusion model may read (`{}` was taken: the photo was
    kept as if the detector saw nothing, without the scores a kept photo carries), or no finite number (the handler
    refuses those as scores)."""
    names = {spec.score_name(cls) for cls in (*decoded_classes(spec.decoder), *spec.scored_classes)}
    required = {spec.score_name(cls) for cls in spec.scored_classes}

    def complete(photo: Photo, row: dict) -> Photo | None:
        try:
            scores = json.loads(row["scores"])
        except (KeyError, TypeError, ValueError, RecursionError):
            return None
        if not isinstance(scores, dict) or not required <= set(scores) <= names or not all(
                type(value) is float and math.isfinite(value)
                for value in scores.values()):
            return None
        return _merge(photo, scores)

    return complete


def _without_scores(photo: Photo, prefixes: tuple[str, ...]) -> Photo:
    """The photo without the scores of this run's detectors that it brought along (a carried photo
    has its release's, from other models or options): they are no evidence for this run, and the
    settled test would read them as such (and skip the detectors that would replace them)."""
    if not any(name.startswith(prefixes) for name, _ in photo.scores):
        return photo
    return photo.replace(scores=tuple((name, score) for name, score in photo.scores if not name.startswith(prefixes)))


def _score_entry(spec: DetectorSpec, runtime: RuntimeConfig) -> Callable[[_Scored], dict | None]:
    def entry(result: _Scored) -> dict | None:
        if result.model_id.endswith(PARTIAL) or isinstance(result.inference, FailedInference):
            return None  # views were skipped, or none scored: not the scores another run would compute
        return {"key": score_key(result.example, spec, runtime), "scores": json.dumps(result.inference, sort_keys=True)}

    return entry


def run_order(spec: DetectorSpec) -> tuple[bool, int, str]:
    """Cheapest first: nsfw detectors (never skipped) first, then by input size, so that the costly
    ones can skip what the cheap ones already decided."""
    return (not spec.nsfw_classes, spec.input.size, spec.name)


class _Settled:
    """The handler's `settled` test: the photo's scores so far (earlier detectors' and this one's)
    already reject it as human. Never for a photo a reviewer decided: its decision wins, and an
    accepted photo must carry every score."""

    def __init__(self, rule: DecisionRule, decisions: Decisions) -> None:
        self._rule, self._decisions = rule, decisions
        self._unreadable = False

    def prepare(self) -> None:
        decisions_of(self._decisions)  # a staged copy read when the handler loads its model (detectors/handler.py)

    def __call__(self, photo: Photo, own: dict[str, float]) -> bool:
        # A process that never loads the model (--detect_share_model_across_processes: one process loads it for
        # all) reads the copy here, inside the inference, where an error made every photo of the batch an
        # internal_error rejection. Settling is only a saving: a photo whose decision cannot be known is scored in
        # full, and the decision step, which reads the copy in its setup, fails the bundle for a retry (a copy
        # changed since launch stops the job there).
        if self._unreadable:
            return False
        try:
            decided = photo.photo_id in decisions_of(self._decisions)
        except Exception:
            self._unreadable = True
            return False
        return not decided and self._rule.certainly_human(dict(photo.scores) | own)


class _Decide(beam.DoFn):
    def __init__(self, rule: DecisionRule, decisions: Decisions, skipping: bool) -> None:
        self._rule = rule
        self._source = decisions
        self._skipping = skipping  # only then can a detector's scores be missing because it was skipped

    def setup(self) -> None:
        self._decisions = decisions_of(self._source)

    def process(self, photo: Photo) -> Iterator:
        decision = self._decisions.get(photo.photo_id)
        if decision is not None and applies(decision, photo):
            rejection = reviewer_rejection(decision, photo)
            yield photo if rejection is None else reject(rejection)
            return
        scores = dict(photo.scores)
        verdict = self._rule.decide(scores)
        if verdict.decision == HELD:
            yield pvalue.TaggedOutput(REVIEW, photo)
        if verdict.decision != KEPT:
            # A detector skipped because the photo was settled already (see the module doc) is named.
            skipped = [spec.name for spec in self._rule.specs if self._skipping
                       and not any(name.startswith(f"{spec.name}.") for name in scores)]
            detail = verdict.detail + (f"; not run (decided already): {', '.join(skipped)}" if skipped else "")
            yield reject(Rejection.of(photo, STAGE, verdict.reason, detail))
            return
        yield photo


class Detect(beam.PTransform):
    """PCollection[Photo] -> DetectOutput(kept: PCollection[Photo] with `scores`, rejected:
    PCollection[Rejection], review: PCollection[Photo] in a borderline band, image included). `decisions`: the
    reviewers' (`Decisions`: a job passes the store's staged copy, `stage_decisions`)."""

    def __init__(self, specs: list[DetectorSpec], runtime: RuntimeConfig,
                 decisions: Decisions | None = None, cache: str = "",
                 fusion: Fusion | None = None) -> None:
        super().__init__()
        self._specs, self._runtime, self._decisions = specs, runtime, decisions or {}
        self._cache = cache
        self._rule = rule_for(specs, fusion)

    def expand(self, photos: beam.PCollection) -> DetectOutput:
        failures: list[beam.PCollection] = []
        runtime = self._runtime
        scored = photos | "Unscored" >> beam.Map(_without_scores, tuple(f"{spec.name}." for spec in self._specs))
        settled = _Settled(self._rule, self._decisions) if runtime.skip_settled else None
        for spec in sorted(self._specs, key=run_order):
            hits = None
            if self._cache:  # scores a killed run already computed are not computed again
                def key(photo: Photo, spec: DetectorSpec = spec) -> str:
                    return score_key(photo, spec, runtime)

                hits, scored = split_by_cache(scored, self._cache, f"scores-{spec.name}", key, _cached_scores(spec),
                                              f"Cached.{spec.name}")
            handler = OnnxDetectorHandler(spec, runtime, None if spec.nsfw_classes else settled)
            results, dead = scored | f"Infer.{spec.name}" >> RunInference(handler).with_exception_handling()
            if hits is not None:
                results = results | f"WriteScores.{spec.name}" >> beam.ParDo(WriteEntries(
                    self._cache, f"scores-{spec.name}", SCORE_SCHEMA, _score_entry(spec, runtime)))
            scored = results | f"Scores.{spec.name}" >> beam.FlatMap(_with_scores).with_outputs(REJECTED_TAG,
                                                                                                 main=KEPT_TAG)
            failures.append(scored[REJECTED_TAG])
            scored = scored[KEPT_TAG]
            if hits is not None:
                scored = (hits, scored) | f"WithCached.{spec.name}" >> beam.Flatten()
            # A failed batch (an undecodable image, a model error) becomes one rejection per photo in it.
            failures.append(dead.failed_inferences | f"Failed.{spec.name}" >> beam.FlatMap(
                failure_to_rejections(STAGE)))
        decide = _Decide(self._rule, self._decisions, runtime.skip_settled)
        decided, extra = apply_stage_with_outputs(scored, STAGE, decide, (REVIEW,), label="Decide")
        rejected = (decided.rejected, *failures) | "Rejections" >> beam.Flatten()
        return DetectOutput(decided.kept, rejected, extra[REVIEW])
