"""Detector throughput on this machine's CPU: images per second per registered detector at batch 1,
8 and 32 (tiles included where the detector tiles; for an export whose weights are graph inputs,
CenterFace's, also the session as it was made before the handler repaired that, at batch 1), and
the whole Detect stage on the local
runner with the detector sets compared (the first defaults, decided by per-detector thresholds; the
defaults before NanoDet joined them (MediaPipe's palm detector instead, decided by the first fusion
model `models/fusion_v1.json`); the defaults until OIDv4 replaced SSDLite (`models/fusion_v4.json`);
today's defaults scoring every view of every photo
(`--detect_every_view`) and, as a run does by default, skipping the rest for a photo the cheaper
detectors already reject as human; today's plus the opt-in pose detector; heldout11's candidate, whose
registry adds context classes: five class columns and a probe on open_nsfw's features)
against a baseline pipeline that only decodes the same images, in the same process. `--photos DIR`
measures on your own photographs (JPEG/PNG files) instead of the benchmark corpus (crops of the
demo photographs, two of ten with people): the skip pays in proportion to the photos with people.

    .venv/bin/python -m benchmarks.detect_cpu [--images 64] [--photos DIR] [--stage_only]

Prints ratios against baselines measured in this run (batch 1; the decode-only pipeline): these
machines are shared and noisy, so absolute numbers from different runs are not comparable.
"""

from __future__ import annotations

import resource
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks import arguments
from benchmarks.corpus import distinct_photos
from pipeline.detectors.fusion import choose_fusion
from pipeline.detectors.handler import RuntimeConfig, create_session, forget_shared_sessions, photo_scores
from pipeline.detectors.preprocess import decode
from pipeline.detectors.registry import BUILTIN_REGISTRY, load_registry, select
from pipeline.evaluation import stored_jpeg
from pipeline.records import Photo
from pipeline.stages.detect import Detect
from pipeline.usage import OneLineParser, usage_said


def photos(count: int, folder: str = "") -> list[Photo]:
    """`count` photos stored at 512 px as a run stores them: the benchmark corpus, or the image
    files of `folder` (sorted by name, the first `count`)."""
    from io import BytesIO
    from pathlib import Path

    from PIL import Image

    if folder:
        files = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)[:count]
        raws = [path.read_bytes() for path in files]
    else:
        raws = distinct_photos(count)
    return [Photo(str(i), image=stored_jpeg(Image.open(BytesIO(raw)), 512)) for i, raw in enumerate(raws)]


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# The detector sets the whole-stage measurement compares.
WITH_PALM = "centerface,ssdlite_person,open_nsfw,mediapipe_palm"
# (label, detectors, skip settled photos, fusion: "default" or a model file, a --model_registry file or None)
UNTIL_HELDOUT8 = "centerface,ssdlite_person,open_nsfw,nanodet_person"
MODELS = BUILTIN_REGISTRY.parent
DETECTOR_SETS = (("first defaults", "centerface,ssdlite_person,open_nsfw", True, "default", None),
                 ("defaults until NanoDet (palm, fusion_v1)", WITH_PALM, True, str(MODELS / "fusion_v1.json"), None),
                 ("defaults until OIDv4 (SSDLite, fusion_v4)", UNTIL_HELDOUT8, True, str(MODELS / "fusion_v4.json"),
                  None),
                 ("defaults, every view", "default", False, "default", None),
                 ("defaults", "default", True, "default", None),
                 ("defaults + pose", "centerface,open_nsfw,nanodet_person,oidv4_person,mediapipe_pose", True,
                  "default", None),
                 # heldout11's candidate (not adopted): context columns and open_nsfw's scene probe (models/README.md).
                 ("probe candidate", "default", True, str(MODELS / "candidate_probe.json"),
                  str(MODELS / "candidate_probe_registry.json")))


def per_detector(images: list[Photo]) -> None:
    runtime = RuntimeConfig()
    for spec in load_registry().values():
        session = create_session(spec, runtime)
        photo_scores(spec, session, images[:2], runtime.tile_min_side)  # warm-up
        rates = {}
        for batch in (1, 8, 32):
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                photo_scores(spec, session, images[i:i + batch], runtime.tile_min_side)
            rates[batch] = len(images) / (time.perf_counter() - start)
        print(f"{spec.name:16s} " + "  ".join(f"batch {b:2d}: {r:6.1f} img/s ({r / rates[1]:.2f}x)"
                                             for b, r in rates.items()))
        exported = create_session(spec, runtime, weights_as_inputs=True)
        if exported.get_overridable_initializers():  # an export with its weights as graph inputs
            photo_scores(spec, exported, images[:2], runtime.tile_min_side)  # warm-up
            start = time.perf_counter()
            for image in images:
                photo_scores(spec, exported, [image], runtime.tile_min_side)
            rate = len(images) / (time.perf_counter() - start)
            print(f"{spec.name:16s} weights as graph inputs (the session before the repair): "
                  f"batch  1: {rate:6.1f} img/s ({rate / rates[1]:.2f}x the session a run uses)")


def stage_seconds(images: list[Photo], detectors: str, runtime: RuntimeConfig | None = None,
                  fusion: str = "default", model_registry: str | None = None) -> float:
    """Seconds of a local pipeline over `images`: the Detect stage with `detectors` ("": decode only)."""
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        created = p | beam.Create(images)
        if detectors:
            specs = select(load_registry(model_registry), detectors)
            # Decided as a run decides: by the fusion model wherever the selection covers it.
            _ = created | Detect(specs, runtime or RuntimeConfig(), fusion=choose_fusion(fusion, specs))
        else:
            _ = created | beam.Map(lambda photo: decode(photo.image).size)
    return time.perf_counter() - start


def whole_stage(images: list[Photo]) -> None:
    baseline = stage_seconds(images, "")
    for label, detectors, skip_settled, fusion, model_registry in DETECTOR_SETS:
        forget_shared_sessions()  # each set builds its sessions, as a job in a fresh worker process does
        seconds = stage_seconds(images, detectors, RuntimeConfig(skip_settled=skip_settled), fusion, model_registry)
        names = [spec.name for spec in select(load_registry(model_registry), detectors)]
        batch = RuntimeConfig().max_batch
        print(f"Detect stage, {label} ({', '.join(names)}; RunInference, batches <= {batch} photos): "
              f"{len(images) / seconds:.1f} img/s; {seconds / baseline:.1f}x the time of a decode-only pipeline "
              f"over the same {len(images)} images")


@usage_said("detect_cpu")
def main() -> None:
    parser = OneLineParser(prog="python -m benchmarks.detect_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=arguments.count(), default=64)
    parser.add_argument("--photos", default="", help="a folder of photographs to use instead of the corpus")
    parser.add_argument("--stage_only", action="store_true", help="only the whole-stage comparison")
    args = parser.parse_args()
    images = photos(args.images, args.photos)
    if not args.stage_only:
        per_detector(images)
    whole_stage(images)
    # The whole benchmark ran in this process (the local runner runs in it too): its peak is the figure.
    print(f"peak RSS of the benchmark: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
