"""The ONNX handler with the real default models on real photographs."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from pipeline.detectors.handler import (
    CPU,
    GpuNotActiveError,
    OnnxDetectorHandler,
    RuntimeConfig,
    create_session,
    photo_scores,
    providers_for,
)
from pipeline.detectors.registry import load_registry, select
from tests.conftest import photo, real_jpeg

SPECS = {spec.name: spec for spec in select(load_registry(), "default")}
PEOPLE = ("astronaut.jpg", "camera.jpg")
NO_PEOPLE = ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "coins.jpg", "brick.jpg")


@pytest.fixture(scope="module")
def sessions():
    return {name: create_session(spec, RuntimeConfig()) for name, spec in SPECS.items()}


def test_providers_are_always_explicit_and_never_azure():
    assert providers_for("cpu") == [CPU]
    auto = providers_for("auto")
    assert auto[-1] == CPU and "AzureExecutionProvider" not in auto
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert auto == [CPU]


def test_required_gpu_fails_loudly_when_cuda_is_not_in_use():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build is installed here")
    with pytest.raises(GpuNotActiveError, match="GPU was required"):
        create_session(SPECS["open_nsfw"], RuntimeConfig(require_gpu=True))


def test_centerface_accepts_any_input_size(sessions):
    [shape] = [i.shape for i in sessions["centerface"].get_inputs()]
    assert shape[0] == "batch" and isinstance(shape[2], str) and isinstance(shape[3], str)


@pytest.mark.parametrize("name", PEOPLE)
def test_people_score_high_on_both_human_detectors(sessions, name):
    for detector, cls in (("centerface", "face"), ("ssdlite_person", "person")):
        [scores] = photo_scores(SPECS[detector], sessions[detector], [photo(image=real_jpeg(name))], 400)
        assert scores[cls] >= SPECS[detector].thresholds[cls], (name, detector, scores)


def test_animals_and_objects_score_low(sessions):
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(NO_PEOPLE)]
    for detector, cls in (("centerface", "face"), ("ssdlite_person", "person"), ("open_nsfw", "nsfw")):
        for name, scores in zip(NO_PEOPLE, photo_scores(SPECS[detector], sessions[detector], batch, 400), strict=True):
            assert scores[cls] < SPECS[detector].review_band[cls], (name, detector, scores)


def test_batched_scores_equal_one_by_one(sessions):
    spec = SPECS["ssdlite_person"]
    batch = [photo(str(i), image=real_jpeg(name)) for i, name in enumerate(PEOPLE + NO_PEOPLE)]
    together = photo_scores(spec, sessions[spec.name], batch, 400)
    alone = [photo_scores(spec, sessions[spec.name], [p], 400)[0] for p in batch]
    assert [s["person"] for s in together] == pytest.approx([s["person"] for s in alone], abs=1e-4)


def test_handler_returns_named_scores_per_photo(sessions):
    handler = OnnxDetectorHandler(SPECS["open_nsfw"], RuntimeConfig())
    results = list(handler.run_inference([photo("1", image=real_jpeg("chelsea.jpg"))], sessions["open_nsfw"]))
    assert results[0].example.photo_id == "1" and set(results[0].inference) == {"open_nsfw.nsfw", "open_nsfw.sfw"}
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 16}
    assert not handler.share_model_across_processes()
    shared = OnnxDetectorHandler(SPECS["open_nsfw"], RuntimeConfig(share_across_processes=True))
    assert shared.share_model_across_processes()
