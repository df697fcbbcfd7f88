"""GPU throughput of every registered detector (the defaults and the opt-in ones): onnxruntime-gpu
with the CUDA provider, inputs and outputs bound to the device with IO binding, batch sweep;
prints images per second per detector and batch, and the ratio to the CPU provider at batch 8
measured in the same process (at batch 1 for a file that fixes its batch at 1, like MediaPipe's).
Then the whole Detect stage as a run uses it (the default detectors, tiles, deciding by the fusion
model, RunInference on the local runner) over real photographs (benchmarks/corpus.py, stored at
512 px as a run stores them), on CUDA, on CUDA with onnxruntime's default timed cuDNN search (what
sessions used before 2026-12-04) and on the CPU provider, in the same process; each cold (sessions
built, batch shapes new, as in a fresh worker) and then warm (the same photos again, sessions kept).

    python -m benchmarks.detect_gpu [--batches 1,8,32,64,128] [--seconds 5] [--stage_images 256]
                                    [--exhaustive_images 24] [--detectors default] [--stage_only]

Needs onnxruntime-gpu (the `gpu` extra) and an NVIDIA GPU; it refuses to run (exit 2) when the
CUDA provider is not really active, so a silent CPU fallback is never reported as GPU speed.
The per-model tensors are synthetic on purpose (that part is the model's device throughput at each
batch size); the whole-stage part decodes and prepares real photos on the CPU, as workers do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

from benchmarks import arguments
from pipeline.detectors.handler import RuntimeConfig, create_session, forget_shared_sessions
from pipeline.detectors.registry import DetectorSpec, load_registry, select
from pipeline.usage import OneLineParser, usage_said


def batch_input(spec: DetectorSpec, batch: int) -> np.ndarray:
    size = spec.input.size
    shape = (batch, 3, size, size) if spec.input.layout == "NCHW" else (batch, size, size, 3)
    rng = np.random.default_rng(0)
    if spec.input.dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape, dtype=np.float32)


def rate(session: ort.InferenceSession, data: np.ndarray, device: str, seconds: float) -> float:
    binding = session.io_binding()
    value = ort.OrtValue.ortvalue_from_numpy(data, device, 0)
    binding.bind_ortvalue_input(session.get_inputs()[0].name, value)
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    session.run_with_iobinding(binding)  # warm-up: kernels, cuDNN autotuning
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run_with_iobinding(binding)
        runs += 1
    binding.synchronize_outputs()
    return runs * data.shape[0] / (time.perf_counter() - start)


def gpu_memory_mib() -> str:
    """The GPU memory this process holds, as nvidia-smi reports it: onnxruntime's arena keeps what its largest
    call needed, so after a configuration this is about its peak (what decides a batch size on a smaller card)."""
    try:
        answer = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "not reported (no nvidia-smi answer)"
    for line in answer.splitlines():
        pid, _, used = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return f"{used.strip()} MiB"
    return "not reported for this process (a sandbox can hide it)"


def whole_stage(count: int, max_batch: int, exhaustive_count: int) -> None:
    """The Detect stage with today's defaults and fusion decision: on CUDA as a run uses it (cuDNN's heuristic
    choice of convolution algorithm), on CUDA with onnxruntime's own default (a timed search for every new
    input shape: slow, so over fewer photos), and on the CPU provider; each cold, then warm."""
    from benchmarks.detect_cpu import photos, stage_seconds

    images = photos(count)
    runs = (("cuda", "HEURISTIC", images, "CUDA"),
            ("cuda", "EXHAUSTIVE", images[:exhaustive_count], "CUDA, timed cuDNN search (onnxruntime's default)"),
            ("cpu", "HEURISTIC", images, "CPU provider"))
    rates = {}
    for device, search, photos_run, label in runs:
        if not photos_run:
            continue
        runtime = RuntimeConfig(device=device, require_gpu=device == "cuda", max_batch=max_batch,
                                cudnn_conv_algo_search=search)
        # Cold: the sessions are built (CUDA's context, cuDNN, each model) and every batch shape is new, as in a
        # fresh worker process. Warm: the same photos again with the sessions kept, as a worker runs after its
        # first bundles (a run's batch shapes come from a bounded set, so a long run meets them again).
        forget_shared_sessions()
        for state in ("cold", "warm"):
            rate = len(photos_run) / stage_seconds(photos_run, "default", runtime)
            rates[label, state] = rate
            print(f"Detect stage, default detectors deciding by fusion, {label}, {state}: {rate:.1f} img/s "
                  f"over {len(photos_run)} photos (RunInference, batches <= {max_batch} photos)", flush=True)
        if device == "cuda":
            print(f"  GPU memory held by this process after it: {gpu_memory_mib()}", flush=True)
    for state in ("cold", "warm"):
        print(f"Detect stage on CUDA, {state}: {rates['CUDA', state] / rates['CPU provider', state]:.1f}x "
              f"the CPU provider's throughput")


@usage_said("detect_gpu")
def main() -> int:
    parser = OneLineParser(prog="python -m benchmarks.detect_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=arguments.counts(), default=[1, 8, 32, 64, 128])
    parser.add_argument("--seconds", type=arguments.seconds, default=5.0)
    parser.add_argument("--stage_images", type=arguments.count(0), default=256,
                        help="photos for the whole-stage part (0: skip)")
    parser.add_argument("--exhaustive_images", type=arguments.count(0), default=24,
                        help="photos for the whole stage with onnxruntime's timed cuDNN search (0: skip)")
    parser.add_argument("--stage_batch", type=arguments.count(), default=64,
                        help="RunInference's largest batch on the GPU, in photos (a tiled photo is five views)")
    parser.add_argument("--detectors", default="",
                        help="registered detectors for the per-model part, comma-separated or 'default' (default: all)")
    parser.add_argument("--stage_only", action="store_true", help="only the whole-stage part")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, providers available: {ort.get_available_providers()}")
    registry = load_registry()
    specs = select(registry, args.detectors) if args.detectors else list(registry.values())
    if not specs:  # the first model's session is what checks that CUDA is really active
        parser.error(f"--detectors={args.detectors} selects no detector")
    for spec in specs:
        try:
            gpu = create_session(spec, RuntimeConfig(device="cuda", require_gpu=True))
        except Exception as err:  # the reason CUDA is not active, then stop: no CPU numbers labelled GPU
            print(f"{spec.name}: {err}")
            return 2
        if args.stage_only:  # CUDA is active (checked with the first model): the stage part is next
            break
        cpu = create_session(spec, RuntimeConfig(device="cpu"))
        # A file that fixes the batch (MediaPipe's, at 1; the handler runs it view by view) is measured
        # at that batch only, on both providers.
        fixed = gpu.get_inputs()[0].shape[0]
        batches = [fixed] if isinstance(fixed, int) and fixed > 0 else args.batches
        cpu_batch = fixed if len(batches) == 1 and batches[0] == fixed else 8
        cpu_rate = rate(cpu, batch_input(spec, cpu_batch), "cpu", args.seconds)
        for batch in batches:
            gpu_rate = rate(gpu, batch_input(spec, batch), "cuda", args.seconds)
            print(f"{spec.name:16s} batch {batch:4d}: {gpu_rate:9.1f} img/s on CUDA "
                  f"({gpu_rate / cpu_rate:.1f}x CPU at batch {cpu_batch})", flush=True)
    if args.stage_images:
        whole_stage(args.stage_images, args.stage_batch, args.exhaustive_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
