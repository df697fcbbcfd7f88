"""The ONNX handler with the real default models on real photographs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pipeline.detectors.handler import (
    CPU,
    GpuNotActiveError,
    OnnxDetectorHandler,
    RuntimeConfig,
    create_session,
    forget_shared_sessions,
    photo_scores,
    providers_for,
    shared_session,
    staged_scores,
)
from pipeline.detectors.preprocess import decode as decode_image
from pipeline.detectors.registry import ChecksumError, load_registry, select
from pipeline.evaluation import _paste, labelled_set, stored_jpeg
from tests.conftest import photo, real_image, real_jpeg, runtime

# Every registered detector (SSDLite is registered, no longer selected by default); the default selection.
SPECS = load_registry()
DEFAULTS = [spec.name for spec in select(SPECS, "default")]
PEOPLE = ("astronaut.jpg", "camera.jpg")
NO_PEOPLE = ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "coins.jpg", "brick.jpg")


@pytest.fixture(scope="module")
def sessions():
    return {name: create_session(spec, runtime()) for name, spec in SPECS.items() if not name.startswith("mediapipe")}


def test_providers_are_always_explicit_and_never_azure():
    assert providers_for("cpu") == [CPU]
    auto = providers_for("auto")
    assert auto[-1] == CPU and "AzureExecutionProvider" not in auto
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert auto == [CPU]


def test_cuda_sessions_ask_cudnn_for_its_heuristic_choice_not_a_timed_search(monkeypatch):
    """onnxruntime's default cuDNN search times every convolution algorithm for every new input shape; a run's
    shapes keep changing (the number of views in a call), so on an H200 the Detect stage spent its time
    searching: 0.4 img/s against 2.8 with the heuristic choice (README, GPU). A timed choice can also differ
    from run to run, and with it the float rounding of a score near a threshold."""
    from pipeline.detectors import handler

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    assert RuntimeConfig().cudnn_conv_algo_search == "HEURISTIC"
    assert providers_for("auto") == [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]
    assert providers_for("cuda", "EXHAUSTIVE")[0] == ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"})
    assert providers_for("cpu") == [CPU]
    asked = []

    class Recorder:
        def __init__(self, model, options, providers):
            asked.append(providers)

        def get_providers(self):
            return [CPU]

    monkeypatch.setattr(ort, "InferenceSession", Recorder)
    spec = SPECS["open_nsfw"]
    handler.create_session(spec, RuntimeConfig(device="auto", cudnn_conv_algo_search="DEFAULT"))
    handler.create_session(spec, RuntimeConfig(device="auto"))
    assert [providers[0][1]["cudnn_conv_algo_search"] for providers in asked] == ["DEFAULT", "HEURISTIC"]


def test_the_active_provider_is_the_one_a_session_gets_not_the_one_asked_for(monkeypatch):
    """A CUDA build on a machine whose GPU cannot start lists CUDA as available and runs sessions on the CPU
    without an error; the score cache's key names what scored (stages/detect.py), so it must see the CPU."""
    from pipeline.detectors import handler
    from pipeline.stages import detect

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build is installed here")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    handler.active_provider.cache_clear()
    detect._scoring_runtime.cache_clear()
    try:
        assert providers_for("auto")[0][0] == "CUDAExecutionProvider"  # asked for
        with pytest.warns(UserWarning, match="CUDAExecutionProvider"):  # onnxruntime's only sign of the fallback
            assert handler.active_provider("auto") == CPU  # got
        assert handler.active_provider("cpu") == CPU
        assert detect._scoring_runtime("auto") == (ort.__version__, CPU)
    finally:
        handler.active_provider.cache_clear()
        detect._scoring_runtime.cache_clear()


def test_required_gpu_fails_loudly_when_cuda_is_not_in_use():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build is installed here")
    with pytest.raises(GpuNotActiveError, match="GPU was required"):
        create_session(SPECS["open_nsfw"], RuntimeConfig(require_gpu=True))
    for _ in range(2):  # nothing is kept from the failed attempt: the second fails the same way
        with pytest.raises(GpuNotActiveError, match="GPU was required"):
            shared_session(SPECS["open_nsfw"], RuntimeConfig(require_gpu=True))


def test_a_process_builds_a_models_session_once_per_runtime():
    spec = SPECS["nanodet_person"]
    first = shared_session(spec, runtime())
    assert shared_session(spec, runtime()) is first  # a later job's DoFn gets the same session
    assert shared_session(spec, runtime(intra_op_threads=3)) is not first  # other threads: another session
    assert shared_session(SPECS["ssdlite_person"], runtime()) is not first
    # the device asked for and the input repair also shape a session (here "cpu" and "auto" both run on the
    # CPU provider, yet a GPU machine would give them different providers)
    assert shared_session(spec, runtime(device="cpu")) is not first
    repaired = dataclasses.replace(spec, input=dataclasses.replace(spec.input, dynamic_hw=not spec.input.dynamic_hw))
    assert shared_session(repaired, runtime()) is not first
    assert create_session(spec, runtime()) is not first  # always a new one (the benchmarks compare them)
    handler = OnnxDetectorHandler(spec, runtime())
    assert handler.load_model() is first
    forget_shared_sessions()  # as a fresh process: the next job builds its own
    assert shared_session(spec, runtime()) is not first


def test_a_model_file_changed_after_its_session_was_made_is_refused(tmp_path):
    spec = SPECS["nanodet_person"]
    copy = tmp_path / "nanodet.onnx"
    copy.write_bytes(Path(spec.file).read_bytes())
    moved = dataclasses.replace(spec, file=str(copy))
    assert shared_session(moved, runtime()) is shared_session(spec, runtime())  # same model bytes, same session
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="registry says"):
        shared_session(moved, runtime())


def test_centerface_accepts_any_input_size(sessions):
    [shape] = [i.shape for i in sessions["centerface"].get_inputs()]
    assert shape[0] == "batch" and isinstance(shape[2], str) and isinstance(shape[3], str)


def test_centerface_weights_are_constants_and_its_scores_those_of_the_export(sessions):
    """The export lists CenterFace's 194 weights as graph inputs, which keeps onnxruntime from folding
    and pre-packing them (half the speed); the session sees them as constants, and scores the real
    photos as the export does but for float rounding."""
    spec = SPECS["centerface"]
    assert sessions["centerface"].get_overridable_initializers() == []
    exported = create_session(spec, runtime(), weights_as_inputs=True)
    assert len(exported.get_overridable_initializers()) == 194
    images = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(PEOPLE + NO_PEOPLE[:2])]
    now = photo_scores(spec, sessions["centerface"], images, 0)  # whole frames: tiles are the same model
    before = photo_scores(spec, exported, images, 0)
    assert max(abs(a["face"] - b["face"]) for a, b in zip(now, before, strict=True)) < 1e-4
    assert now[0]["face"] > 0.9  # the astronaut's face, so the comparison is not of zeros


@pytest.mark.parametrize("name", PEOPLE)
def test_people_score_high_on_the_face_and_person_detectors(sessions, name):
    for detector, cls in (("centerface", "face"), ("ssdlite_person", "person"), ("oidv4_person", "person")):
        [scores] = photo_scores(SPECS[detector], sessions[detector], [photo(image=real_jpeg(name))], 400)
        assert scores[cls] >= SPECS[detector].thresholds[cls], (name, detector, scores)


def test_animals_and_objects_score_low(sessions):
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(NO_PEOPLE)]
    for detector, cls in (("centerface", "face"), ("ssdlite_person", "person"), ("oidv4_person", "person"),
                          ("open_nsfw", "nsfw")):
        for name, scores in zip(NO_PEOPLE, photo_scores(SPECS[detector], sessions[detector], batch, 400), strict=True):
            assert scores[cls] < SPECS[detector].review_band[cls], (name, detector, scores)


def test_batched_scores_equal_one_by_one(sessions):
    spec = SPECS["ssdlite_person"]
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(PEOPLE + NO_PEOPLE)]
    together = photo_scores(spec, sessions[spec.name], batch, 400)
    alone = [photo_scores(spec, sessions[spec.name], [p], 400)[0] for p in batch]
    assert [s["person"] for s in together] == pytest.approx([s["person"] for s in alone], abs=1e-4)


def test_handler_returns_named_scores_per_photo(sessions):
    handler = OnnxDetectorHandler(SPECS["open_nsfw"], runtime())
    results = list(handler.run_inference([photo("1", image=real_jpeg("chelsea.jpg"))], sessions["open_nsfw"]))
    assert results[0].example.photo_id == "1" and set(results[0].inference) == {"open_nsfw.nsfw", "open_nsfw.sfw"}
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 16}
    assert not handler.share_model_across_processes()
    shared = OnnxDetectorHandler(SPECS["open_nsfw"], runtime(share_across_processes=True))
    assert shared.share_model_across_processes()


# MediaPipe's palm and pose detectors (both opt-in). Their files fix the batch at 1; the handler
# runs such a model view by view. Crops come from the scikit-image photographs in the demo set.
MEDIAPIPE = {name: load_registry()[name] for name in ("mediapipe_palm", "mediapipe_pose")}


@pytest.fixture(scope="module")
def mediapipe_sessions():
    return {name: create_session(spec, runtime()) for name, spec in MEDIAPIPE.items()}


def _score(sessions, detector: str, img) -> float:
    [scores] = photo_scores(MEDIAPIPE[detector], sessions[detector], [photo(image=stored_jpeg(img, 512))], 400)
    return next(iter(scores.values()))


def test_mediapipe_models_fix_the_batch_and_still_score_several_photos_at_once(mediapipe_sessions):
    spec, session = MEDIAPIPE["mediapipe_pose"], mediapipe_sessions["mediapipe_pose"]
    assert session.get_inputs()[0].shape[0] == 1
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(("astronaut.jpg", "rocket.jpg"))]
    together = photo_scores(spec, session, batch, 400)  # 2 photos x 5 views, one view per call
    alone = [photo_scores(spec, session, [p], 400)[0] for p in batch]
    assert [s["person"] for s in together] == pytest.approx([s["person"] for s in alone], abs=1e-6)


def test_palm_detector_sees_hands_without_a_face_that_the_face_and_person_detectors_miss(
        sessions, mediapipe_sessions):
    # The demo set's camera.jpg is a JPEG (q88) of scikit-image's PNG; the palm scores of these
    # crops move with compression (0.47-0.57 here, 0.58-0.80 from the PNG in `evaluate`'s leak set),
    # so the claim is: never silently kept (at least in the review band), one clearly rejected.
    palm, camera = MEDIAPIPE["mediapipe_palm"], real_image("camera.jpg")
    scores = []
    for box in ((150, 190, 340, 285), (150, 175, 350, 320), (250, 160, 340, 240)):  # hands on the camera
        crop = camera.crop(box)
        scores.append(_score(mediapipe_sessions, "mediapipe_palm", crop))
        assert scores[-1] >= palm.review_band["hand"], (box, scores)
        stored = photo(image=stored_jpeg(crop, 512))
        [person] = photo_scores(SPECS["ssdlite_person"], sessions["ssdlite_person"], [stored], 400)
        [face] = photo_scores(SPECS["centerface"], sessions["centerface"], [stored], 400)
        assert person["person"] < SPECS["ssdlite_person"].thresholds["person"], (box, person)
        assert face["face"] < SPECS["centerface"].review_band["face"], (box, face)
    assert max(scores) >= palm.thresholds["hand"], scores


def test_palm_detector_misses_the_astronauts_glove_and_arm(mediapipe_sessions):
    # Honest limits: the gloved hand at the astronaut's lower left and her sleeve are not hands to
    # it (SSDLite's person class catches both crops, 0.84 and 0.98); recorded so a better model shows.
    astronaut = real_image("astronaut.jpg")
    for box in ((60, 420, 260, 512), (0, 250, 220, 512)):
        assert _score(mediapipe_sessions, "mediapipe_palm", astronaut.crop(box)) < 0.45


@pytest.mark.parametrize("name", NO_PEOPLE)
def test_mediapipe_detectors_stay_below_their_bands_on_clean_photos(mediapipe_sessions, name):
    img = real_image(name)
    for detector, spec in MEDIAPIPE.items():
        [cls] = spec.human_classes
        assert _score(mediapipe_sessions, detector, img) < spec.review_band[cls], (name, detector)


def test_pose_detector_scores_people_and_a_tiny_pasted_person_high(mediapipe_sessions):
    threshold = MEDIAPIPE["mediapipe_pose"].thresholds["person"]
    astronaut = real_image("astronaut.jpg")
    assert _score(mediapipe_sessions, "mediapipe_pose", astronaut) >= threshold
    tiny = _paste(real_image("grass.jpg"), astronaut.crop((130, 0, 400, 512)), 0.08, (0.3, 0.7))
    assert _score(mediapipe_sessions, "mediapipe_pose", tiny) >= threshold
    assert _score(mediapipe_sessions, "mediapipe_pose", real_image("grass.jpg")) < 0.3


# NanoDet-m (opt-in): a COCO detector whose person class sees small people SSDLite misses, at the cost
# of false alarms on animals (models/README.md). Whole image only: its tiles added more false alarms
# than people on the tuning photographs.
NANODET = load_registry()["nanodet_person"]


@pytest.fixture(scope="module")
def nanodet_session():
    return create_session(NANODET, runtime())


def _nanodet(session, img) -> float:
    [scores] = photo_scores(NANODET, session, [photo(image=stored_jpeg(img, 512))], 400)
    return scores["person"]


def test_nanodet_finds_the_tiny_astronaut_that_ssdlite_misses(nanodet_session, sessions):
    [tiny] = [s.image for s in labelled_set() if s.name == "composite/tiny_astronaut_in_china"]
    assert _nanodet(nanodet_session, tiny) >= NANODET.thresholds["person"]
    stored = photo(image=stored_jpeg(tiny, 512))
    [ssd] = photo_scores(SPECS["ssdlite_person"], sessions["ssdlite_person"], [stored], 400)
    assert ssd["person"] < SPECS["ssdlite_person"].review_band["person"]  # tiles included
    for name in PEOPLE:
        assert _nanodet(nanodet_session, real_image(name)) >= NANODET.thresholds["person"], name


def test_nanodet_flags_the_cat_close_up_and_scores_objects_low(nanodet_session):
    # Honest limits, pinned so that a better model shows: the cat's face reads as a person (0.57), which
    # is why the demo's cat is rejected since NanoDet became a default.
    assert _nanodet(nanodet_session, real_image("chelsea.jpg")) >= NANODET.thresholds["person"]
    for name in ("coffee.jpg", "rocket.jpg", "coins.jpg", "brick.jpg", "grass.jpg"):
        assert _nanodet(nanodet_session, real_image(name)) < NANODET.review_band["person"], name


class _RecordingSession:
    """Stands in for a session: records how many views each call gets (the memory a call takes
    grows with them) and answers with one session's real outputs for that many views."""

    def __init__(self, real: ort.InferenceSession) -> None:
        self._real = real
        self.calls: list[int] = []

    def get_inputs(self):
        return self._real.get_inputs()

    def get_providers(self):
        return self._real.get_providers()

    def run(self, names, feeds):
        [batch] = feeds.values()
        self.calls.append(len(batch))
        return self._real.run(names, feeds)


def test_a_large_batch_is_run_in_calls_of_a_bounded_number_of_views(sessions):
    """Memory must not grow with the batch Beam forms: 16 photos x 5 views were one CenterFace call
    (5.5 GB); on the CPU every call now holds at most MAX_VIEWS_PER_RUN views, scores unchanged."""
    from pipeline.detectors import handler

    recording = _RecordingSession(sessions["ssdlite_person"])
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(NO_PEOPLE * 2)]
    scores = photo_scores(SPECS["ssdlite_person"], recording, batch, 400)
    assert sum(recording.calls) > handler.MAX_VIEWS_PER_RUN and max(recording.calls) <= handler.MAX_VIEWS_PER_RUN
    assert scores == [photo_scores(SPECS["ssdlite_person"], sessions["ssdlite_person"], [one], 400)[0]
                      for one in batch]


class _CudaRecordingSession(_RecordingSession):
    """The same, saying it runs on CUDA, where the handler batches a call up to MAX_VIEWS_PER_CUDA_RUN views."""

    def get_providers(self):
        return ["CUDAExecutionProvider", CPU]


def test_a_cuda_call_holds_a_bounded_number_of_views_too(sessions):
    """On CUDA a whole batch was one call: `--detect_batch_size 64` made calls of 320 CenterFace views (~22 GB of
    activations by the CPU's measure, an L4 has 24). Now at most MAX_VIEWS_PER_CUDA_RUN views a call, scores
    unchanged (the real session answers each call)."""
    from pipeline.detectors import handler

    spec = SPECS["open_nsfw"]  # one view a photo: a call's views are its photos
    recording = _CudaRecordingSession(sessions["open_nsfw"])
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(NO_PEOPLE * 20)]
    assert len(batch) > handler.MAX_VIEWS_PER_CUDA_RUN
    scores = photo_scores(spec, recording, batch, 400)
    assert max(recording.calls) == handler.MAX_VIEWS_PER_CUDA_RUN and sum(recording.calls) == len(batch)
    assert len(recording.calls) == -(-len(batch) // handler.MAX_VIEWS_PER_CUDA_RUN)  # batching still pays: full calls
    distinct = {name: photo_scores(spec, sessions["open_nsfw"], [photo(image=real_jpeg(name))], 400)[0]
                for name in NO_PEOPLE}
    for one, name in zip(scores, NO_PEOPLE * 20, strict=True):
        assert one == pytest.approx(distinct[name], abs=1e-5)


def test_sessions_keep_no_memory_pattern_per_input_shape(sessions):
    assert all(not session.get_session_options().enable_mem_pattern for session in sessions.values())


def test_staged_scores_skip_only_what_is_settled(sessions):
    """Whole images first; a photo settled before this detector gets no views, one settled by its
    whole image gets no tiles; every other photo gets exactly the scores of `photo_scores`."""
    spec, session = SPECS["centerface"], sessions["centerface"]
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(("astronaut.jpg", "chelsea.jpg",
                                                                            "coffee.jpg"))]
    full = photo_scores(spec, session, batch, 400)
    assert staged_scores(spec, session, batch, 400, lambda one, own: False) == (full, [False, False, False])

    recording = _RecordingSession(session)
    by_its_face = staged_scores(spec, recording, batch, 400, lambda one, own: own.get("centerface.face", 0) >= 0.5)
    assert by_its_face[1] == [True, False, False]  # the astronaut's face decides on the whole image
    assert by_its_face[0][1:] == full[1:] and 0.5 <= by_its_face[0][0]["face"] <= full[0]["face"]
    assert sum(recording.calls) == 3 + 2 * 4  # three whole images, the tiles of the two still open

    recording = _RecordingSession(session)
    before = staged_scores(spec, recording, batch, 400, lambda one, own: one.photo_id == "1")
    assert before == ([full[0], {}, full[2]], [False, True, False]) and sum(recording.calls) == 2 * 5


def test_tiled_photos_are_batched_together_under_the_default_sizes():
    """Batches count photos. Weighing them in views (a tiled photo weighs five) was tried: Beam 2.77's
    estimator starts at --detect_min_batch_size, below one photo's weight, and never grows, so every
    batch held one photo and GPU batching was lost. Under the defaults batches must grow past one."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from tests.conftest import local_pipeline

    kwargs = OnnxDetectorHandler(SPECS["centerface"], runtime()).batch_elements_kwargs()
    photos = [photo(str(i), width=1024, height=768) for i in range(300)]
    with local_pipeline() as p:
        sizes = p | beam.Create(photos) | beam.BatchElements(**kwargs) | beam.Map(len)
        assert_that(sizes | beam.combiners.ToList() | beam.Map(lambda n: (min(n) > 0, max(n) > 1, sum(n))),
                    equal_to([(True, True, 300)]))


class _ScriptedSession:
    """Stands in for a session of a one-class classifier (a custom registry's, its output logits
    without "softmax", or NaN from an overflow: decoders.py passes them on as they are): answers
    view after view, in the order the views are run, with the next scripted value."""

    def __init__(self, values: list[float]) -> None:
        self._values = list(values)

    def get_inputs(self):
        return [type("Input", (), {"name": "image", "shape": ["batch", 3, "h", "w"]})()]

    def get_providers(self):
        return [CPU]

    def run(self, names, feeds):
        [batch] = feeds.values()
        taken, self._values = self._values[:len(batch)], self._values[len(batch):]
        return [np.array(taken, dtype=np.float32).reshape(len(batch), 1)]


@pytest.mark.parametrize("whole, tiles", [(float("nan"), [0.9, 0.1, 0.1, 0.1]), (-2.0, [-1.0, -1.0, -1.0, -1.0])])
def test_staged_scores_equal_photo_scores_whatever_a_view_scores(whole, tiles):
    """With nothing settled, staged_scores must give exactly photo_scores' result (the claim the
    Detect stage's "same decisions" rests on). photo_scores folds every view, the whole image too,
    into max(0.0, ...): a NaN or negative whole-image score becomes 0 and the tiles still count.
    Taken as is, a NaN whole image hid a tile's 0.9 face (a person kept) and -1 was stored for 0. A NaN now
    fails the batch in both (no evidence either way, never read as a low score)."""
    from pipeline.detectors.handler import NonFiniteScore

    spec = dataclasses.replace(SPECS["centerface"], decoder={"type": "classifier", "output": "logits",
                                                                         "class_names": ["face"]})
    batch = [photo("1", image=real_jpeg("astronaut.jpg"))]  # 512 px: whole image + 4 tiles
    if whole != whole:  # NaN
        with pytest.raises(NonFiniteScore):
            photo_scores(spec, _ScriptedSession([whole, *tiles]), batch, 400)
        with pytest.raises(NonFiniteScore):
            staged_scores(spec, _ScriptedSession([whole, *tiles]), batch, 400, lambda one, own: False)
        return
    full = photo_scores(spec, _ScriptedSession([whole, *tiles]), batch, 400)
    staged = staged_scores(spec, _ScriptedSession([whole, *tiles]), batch, 400, lambda one, own: False)
    assert staged == (full, [False])


def test_staged_scores_hold_one_decoded_image_at_a_time_as_photo_scores_do(monkeypatch):
    """A batch's decoded images were all held until its tiles were cut: memory grew with the batch times the
    images' pixels (8 carried 6000 x 6000 photos, 0.6 MB of JPEG each, took 1.2 GiB more than photo_scores;
    --max_pixels lets a release hold 64 MP ones). Now one at a time, the scores the same."""
    import weakref

    from pipeline.detectors import handler

    alive: list[weakref.ref] = []
    most = [0]

    def counted(image_bytes: bytes):
        image = decode_image(image_bytes)
        alive.append(weakref.ref(image))
        most[0] = max(most[0], sum(ref() is not None for ref in alive))
        return image

    spec = dataclasses.replace(SPECS["centerface"], decoder={"type": "classifier", "output": "logits",
                                                                         "class_names": ["face"]})
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(PEOPLE + NO_PEOPLE, start=1)]
    values = [0.1] * (5 * len(batch))
    full = photo_scores(spec, _ScriptedSession(values), batch, 400)
    monkeypatch.setattr(handler, "decode_image", counted)
    staged = staged_scores(spec, _ScriptedSession(values), batch, 400, lambda one, own: False)
    assert staged == (full, [False] * len(batch))
    assert most[0] == 1, f"{most[0]} decoded images of a batch of {len(batch)} held at once"


def test_an_input_or_score_that_is_no_number_fails_the_batch_closed_never_reads_as_no_person(sessions):
    """A normalisation that erases the pixels (std 0: the registry now refuses it, a spec built otherwise
    may not) feeds the model NaN: CenterFace then answered 0 (no face) and a NaN score was folded into 0,
    both read as "no person", and the astronaut was kept. Now the batch fails, and the Detect stage files
    each of its photos as a rejection; a NaN score (open_nsfw's answer to such input) fails it too."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.detectors.preprocess import NonFiniteInput
    from pipeline.stages.detect import Detect
    from tests.conftest import local_pipeline

    spec = SPECS["centerface"]  # std 0: its heatmaps answer 0 for the astronaut's face, as for no face
    broken = dataclasses.replace(spec, input=dataclasses.replace(spec.input, std=(0.0, 0.0, 0.0)))
    astronaut = photo("1", image=stored_jpeg(real_image("astronaut.jpg"), 512))
    assert photo_scores(spec, sessions["centerface"], [astronaut], 400)[0]["face"] > 0.5
    with pytest.raises(NonFiniteInput):
        photo_scores(broken, sessions["centerface"], [astronaut], 400)
    from pipeline.detectors.handler import NonFiniteScore, _run_views

    # Every default detector's decoder (classifier, score maps, SSD boxes, YOLO-style heads), and SSDLite's:
    # a model answering NaN fails the batch. The score-map and SSD decoders take maxima, where max(0.0, nan) is 0.0.
    assert set(DEFAULTS) < {"open_nsfw", "centerface", "nanodet_person", "oidv4_person", "ssdlite_person"}
    for name in ("open_nsfw", "centerface", "nanodet_person", "oidv4_person", "ssdlite_person"):
        detector, session = SPECS[name], sessions[name]
        shape = [side if isinstance(side, int) else detector.input.size for side in session.get_inputs()[0].shape[1:]]
        dtype = np.uint8 if detector.input.dtype == "uint8" else np.float32
        if dtype == np.uint8:  # a uint8 input cannot hold NaN: a session answering NaN stands in for it
            continue
        with pytest.raises(NonFiniteScore, match=name):
            _run_views(detector, session, [np.full(shape, np.nan, dtype)])

    class OneNanCell:  # a 0.9 face in a score map whose other cell is NaN: the NaN hid the face (0.0)
        def get_inputs(self):
            return [type("Input", (), {"name": "input.1", "shape": ["batch", 3, "h", "w"]})()]

        def get_providers(self):
            return [CPU]

        def run(self, names, feeds):
            return [np.array([[[[0.9, np.nan]]]], np.float32)] * len(names)

    with pytest.raises(NonFiniteScore, match="centerface"):
        _run_views(SPECS["centerface"], OneNanCell(), [np.zeros((3, 32, 32), np.float32)])
    with local_pipeline() as p:
        out = p | beam.Create([astronaut]) | Detect([broken], runtime())
        assert_that(out.kept, equal_to([]), label="nothing kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("1", "detect", "internal_error")]), label="rejected")


PROBE_CANDIDATE = load_registry(str(Path(__file__).parents[1] / "models" / "candidate_probe_registry.json"))


def test_a_context_probe_scores_the_detectors_own_pass_as_its_formula_says():
    """open_nsfw with the shipped scene probe (models/candidate_probe_registry.json): its pooled last features, an
    intermediate tensor the session is asked for, give the probe's score; the detector's own scores do not move.
    The oracle asks onnxruntime for that tensor itself and computes sigmoid(b + w . log1p(x)) one number at a time."""
    import math

    import onnx

    plain, probed = SPECS["open_nsfw"], PROBE_CANDIDATE["open_nsfw"]
    (probe,) = probed.probes
    model = onnx.load(plain.file)
    model.graph.output.append(onnx.helper.make_tensor_value_info(probe.input, onnx.TensorProto.FLOAT, None))
    oracle = ort.InferenceSession(model.SerializeToString(), providers=[CPU])
    photos = [photo(name, image=real_jpeg(name)) for name in PEOPLE + NO_PEOPLE]
    got = photo_scores(probed, create_session(probed, runtime()), photos, 400)
    before = photo_scores(plain, create_session(plain, runtime()), photos, 400)
    from pipeline.detectors.preprocess import decode, to_tensor

    for one, scores, old in zip(photos, got, before, strict=True):
        assert {cls: scores[cls] for cls in old} == old  # nsfw and sfw as without the probe
        tensor = to_tensor(decode(one.image), plain.input)[None]
        (features,) = oracle.run([probe.input], {oracle.get_inputs()[0].name: tensor})
        values = features.reshape(-1).tolist()
        z = probe.bias + sum(w * math.log1p(max(x, 0.0)) for w, x in zip(probe.weights, values, strict=True))
        assert scores["scene_person"] == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-5)
    # The astronaut and the cameraman (tuning photographs the probe was fitted on: this pins its wiring, not its
    # worth) against the cat, the coffee, the rocket, the coins and the brick wall.
    people, clean = [s["scene_person"] for s in got[:len(PEOPLE)]], [s["scene_person"] for s in got[len(PEOPLE):]]
    assert min(people) > 0.9 and max(clean) < 0.2, (people, clean)


def test_a_probe_shapes_its_own_session_and_the_handler_names_its_class():
    plain, probed = SPECS["open_nsfw"], PROBE_CANDIDATE["open_nsfw"]
    session = shared_session(probed, runtime())
    assert session is not shared_session(plain, runtime())  # the plain one has no such output
    assert "Reshape:0" in {o.name for o in session.get_outputs()}
    assert "Reshape:0" not in {o.name for o in shared_session(plain, runtime()).get_outputs()}
    handler = OnnxDetectorHandler(probed, runtime())
    (result,) = handler.run_inference([photo("1", image=real_jpeg("chelsea.jpg"))], handler.load_model())
    assert set(result.inference) == {"open_nsfw.nsfw", "open_nsfw.sfw", "open_nsfw.scene_person"}


def test_a_probe_whose_weights_do_not_fit_its_tensor_fails_the_batch_closed():
    """A probe of another width (fitted on another model's tensor) is an error on the batch, which the Detect
    stage turns into internal_error rejections: never a score read from the wrong numbers."""
    probed = PROBE_CANDIDATE["open_nsfw"]
    (probe,) = probed.probes
    narrow = dataclasses.replace(probed, probes=(dataclasses.replace(probe, weights=probe.weights[:512]),))
    with pytest.raises(ValueError, match="1024 numbers a row, the probe 512 weights"):
        photo_scores(narrow, create_session(narrow, runtime()), [photo("1", image=real_jpeg("chelsea.jpg"))], 400)


def test_an_output_without_the_views_as_its_first_axis_fails_instead_of_mixing_photos_scores(tmp_path):
    """A model whose score output is declared [256, N] passed the registry and the output checks; reshaped to
    (views, -1), a batch's photos swapped scores (a blank photo 1.0, the face beside it 0)."""
    import hashlib
    import json

    from onnx import TensorProto, helper

    from pipeline.detectors.registry import read_registry

    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0),
             helper.make_node("Reshape", ["m", "shape"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["score"], perm=[1, 0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [256, "N"])],
                              [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 256])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = model.SerializeToString()
    (tmp_path / "t.onnx").write_bytes(data)
    entry = {"name": "toy", "kind": "face", "file": "t.onnx", "sha256": hashlib.sha256(data).hexdigest(),
             "input": {"size": 16, "scale": 1 / 255}, "decoder": {"type": "score_maps", "outputs": {"face": ["score"]}},
             "human_classes": ["face"], "thresholds": {"face": 0.5}}
    (tmp_path / "toy.json").write_text(json.dumps({"detectors": [entry]}))
    spec = read_registry(str(tmp_path / "toy.json"))["toy"]
    session = create_session(spec, runtime())
    for photos in ([photo("A", image=real_jpeg("coffee.jpg"))],
                   [photo("A", image=real_jpeg("coffee.jpg")), photo("B", image=real_jpeg("rocket.jpg"))]):
        with pytest.raises(ValueError, match="views of the batch first"):
            photo_scores(spec, session, photos, 0)
