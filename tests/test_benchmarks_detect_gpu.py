"""The prepared GPU benchmark: its IO-binding measurement runs (here on the CPU provider), and on a
machine without CUDA it refuses to report anything rather than label CPU numbers as GPU ones."""

from __future__ import annotations

import os

import onnxruntime as ort
import pytest

from benchmarks import detect_gpu
from pipeline.detectors.handler import create_session
from pipeline.detectors.registry import load_registry, select
from tests.conftest import runtime


def test_io_binding_measurement_runs():
    spec = select(load_registry(), "ssdlite_person")[0]
    session = create_session(spec, runtime(device="cpu"))
    data = detect_gpu.batch_input(spec, 2)
    assert data.shape == (2, 300, 300, 3) and data.dtype.name == "uint8"
    assert detect_gpu.rate(session, data, "cpu", seconds=0.05) > 0


def test_refuses_without_cuda(capsys, monkeypatch):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build is installed here")
    monkeypatch.setattr("sys.argv", ["detect_gpu", "--seconds=0.01", "--batches=1"])
    assert detect_gpu.main() == 2
    assert "a GPU was required" in capsys.readouterr().out
    # --stage_only checks CUDA with its first model too, before any stage figure
    monkeypatch.setattr("sys.argv", ["detect_gpu", "--stage_only", "--detectors=open_nsfw", "--stage_images=1"])
    assert detect_gpu.main() == 2
    out = capsys.readouterr().out
    assert "open_nsfw: " in out and "Detect stage" not in out
    monkeypatch.setattr("sys.argv", ["detect_gpu", "--stage_only", "--detectors=none"])  # nothing to check CUDA with
    with pytest.raises(SystemExit) as stopped:
        detect_gpu.main()
    assert stopped.value.code == 2 and "selects no detector" in capsys.readouterr().err


def test_the_whole_stage_measurement_decides_by_fusion_and_runs_on_the_cpu_provider():
    from benchmarks.detect_cpu import photos, stage_seconds

    assert stage_seconds(photos(2), "default", runtime(device="cpu", max_batch=2)) > 0


def test_gpu_memory_is_said_to_be_unknown_rather_than_guessed(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert detect_gpu.gpu_memory_mib().startswith("not reported")
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '1, 10'\necho '{os.getpid()}, 2345'\n")
    smi.chmod(0o755)
    assert detect_gpu.gpu_memory_mib() == "2345 MiB"
    smi.write_text("#!/bin/sh\necho '1, 10'\n")
    assert detect_gpu.gpu_memory_mib().startswith("not reported for this process")
