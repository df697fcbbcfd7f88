"""`pass-pipeline evaluate`: recall on photographs with people and keep-rate on photographs without,
per detector and combined, by the detect stage's own decision rule (the fusion model, or per-detector
thresholds): an image counts as removed when a run would reject it or hold it for review.

The labelled set is built from real photographs that PyPI packages ship (scikit-image,
scikit-learn and matplotlib sample images) plus composites generated from them: a person pasted
small into a landscape (the background people PASS missed), tight crops, grayscale and rotations.
Each image is normalised by the image stage's own `normalise` (longer side `max_side`, JPEG), so
the detectors see what they see in a run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageOps

from pipeline.detectors.decision import KEPT, rule_for
from pipeline.detectors.fusion import Fusion
from pipeline.detectors.handler import RuntimeConfig, photo_scores, shared_session
from pipeline.detectors.registry import DetectorSpec
from pipeline.io.whole_file import write_whole
from pipeline.records import Photo
from pipeline.stages.image import ImageConfig, ImageRejected, normalise


@dataclass(frozen=True)
class Sample:
    name: str
    has_person: bool
    # The pixels, or how to decode them when asked: a labelled package photograph is scored from its file
    # (`original`), so its pixels are decoded only where something needs them (a format a run rejects, a
    # benchmark reading the size); decoding all 500 tuning photographs up front held ~1.1 GB.
    pixels: Image.Image | Callable[[], Image.Image]
    # The file as shipped, where there is one the image stage reads (a labelled package photograph):
    # scored as a run stores those very bytes, not as it would store `image` (see `stored_as_a_run`).
    original: bytes | None = None

    @property
    def image(self) -> Image.Image:
        return self.pixels() if callable(self.pixels) else self.pixels


def _package_dir(module: str) -> Path:
    import importlib

    file = importlib.import_module(module).__file__
    if file is None:  # a namespace package
        raise ValueError(f"{module}: no file to find its data beside")
    return Path(file).resolve().parent


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


# Real photographs: which show people. Everything else in these folders is a non-person image
# (scikit-image's tiny GIF and its 25 px face array are skipped: too small to be photographs).
PEOPLE = {"astronaut.png", "camera.png", "grace_hopper.jpg"}
SKIP = {"no_time_for_that_tiny.gif", "chessboard_RGB.png", "multipage.tif", "multipage_rgb.tif"}


def package_photos() -> list[Sample]:
    folders = [(_package_dir("skimage.data"), ("*.png", "*.jpg")),
               (_package_dir("sklearn.datasets") / "images", ("*.jpg",)),
               (_package_dir("matplotlib") / "mpl-data" / "sample_data", ("*.jpg", "*.png"))]
    samples = []
    for folder, patterns in folders:
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)):
                if path.name not in SKIP:
                    samples.append(Sample(f"{folder.name}/{path.name}", path.name in PEOPLE, _open(path)))
    return samples


def _paste(background: Image.Image, person: Image.Image, width_fraction: float, where: tuple[float, float]
           ) -> Image.Image:
    """`person` scaled to `width_fraction` of the background's width, pasted at relative `where`."""
    out = background.copy()
    width = max(8, round(out.width * width_fraction))
    small = person.resize((width, max(8, round(person.height * width / person.width))), Image.Resampling.LANCZOS)
    out.paste(small, (round((out.width - small.width) * where[0]), round((out.height - small.height) * where[1])))
    return out


def composites(photos: dict[str, Image.Image]) -> list[Sample]:
    astronaut, camera, hopper = photos["astronaut.png"], photos["camera.png"], photos["grace_hopper.jpg"]
    china, flower, grass = photos["china.jpg"], photos["flower.jpg"], photos["grass.png"]
    astronaut_body = astronaut.crop((130, 0, 400, 512))  # the person, without the flag and shuttle
    hopper_head = hopper.crop((120, 40, 400, 380))
    people = [
        ("small_astronaut_in_china", _paste(china, astronaut_body, 0.18, (0.8, 0.9))),
        ("tiny_astronaut_in_china", _paste(china, astronaut_body, 0.08, (0.3, 0.7))),
        ("tiny_hopper_on_grass", _paste(grass, hopper, 0.1, (0.9, 0.1))),
        ("small_cameraman_in_flower", _paste(flower, camera.crop((100, 30, 420, 512)), 0.22, (0.1, 0.85))),
        ("small_hopper_on_grass", _paste(grass, hopper, 0.25, (0.5, 0.5))),
        ("astronaut_face_crop", astronaut.crop((150, 20, 300, 200))),
        ("hopper_face_crop", hopper_head),
        ("cameraman_upper_half", camera.crop((0, 0, 512, 256))),
        ("astronaut_grayscale", ImageOps.grayscale(astronaut).convert("RGB")),
        ("hopper_grayscale", ImageOps.grayscale(hopper).convert("RGB")),
        ("astronaut_rotated_90", astronaut.rotate(90, expand=True)),
        ("cameraman_rotated_270", camera.rotate(270, expand=True)),
        ("hopper_rotated_180", hopper.rotate(180, expand=True)),
        ("astronaut_mirrored", ImageOps.mirror(astronaut)),
    ]
    no_people = [
        ("china_crop", china.crop((0, 0, 320, 320))),
        ("flower_grayscale", ImageOps.grayscale(flower).convert("RGB")),
        ("china_rotated_90", china.rotate(90, expand=True)),
    ]
    return ([Sample(f"composite/{name}", True, img) for name, img in people]
            + [Sample(f"composite/{name}", False, img) for name, img in no_people])


def labelled_set() -> list[Sample]:
    real = package_photos()
    by_file = {sample.name.rsplit("/", 1)[1]: sample.image for sample in real}
    return real + composites(by_file)


def leaks(photos: dict[str, Image.Image]) -> list[Sample]:
    """People the way they leaked past the face + person detectors on independent photographs:
    hands without a face, a torso without a head, people a few pixels tall. All contain a person;
    reported apart from the labelled set (recall only), so that its 100% bar stays comparable."""
    camera, hopper, china, flower = (photos[name] for name in ("camera.png", "grace_hopper.jpg", "china.jpg",
                                                               "flower.jpg"))
    hands = camera.crop((150, 190, 340, 285))  # both hands on the camera, no face
    return [Sample(f"leak/{name}", True, img) for name, img in (
        ("hands_on_camera", hands),
        ("hands_on_camera_taller", camera.crop((150, 175, 350, 320))),
        ("right_hand_on_camera", camera.crop((250, 160, 340, 240))),
        ("hands_on_camera_in_china", _paste(china, hands, 0.3, (0.5, 0.9))),
        ("cameraman_without_head", camera.crop((0, 190, 512, 512))),
        ("hopper_without_head", hopper.crop((0, 330, hopper.width, hopper.height))),
        ("tiny_cameraman_in_china", _paste(china, camera.crop((100, 30, 420, 512)), 0.06, (0.7, 0.8))),
        ("tiny_hopper_in_flower", _paste(flower, hopper, 0.04, (0.2, 0.3))),
    )]


def leak_set() -> list[Sample]:
    return leaks({sample.name.rsplit("/", 1)[1]: sample.image for sample in package_photos()})


# The most pixels a labelled photograph may have to be scored at all (the largest committed one has 108 million):
# above the pipeline's own --max_pixels default and above Pillow's bomb guard, which the image stage sets to 200
# million for a run, so that such a photograph is scored, not the end of the evaluation; still a bound, as a
# labelled file is a download too (~3 GB of RGB at this size).
LABELLED_MAX_PIXELS = 1_000_000_000


@contextmanager
def _pillow_pixel_guard(pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit raised to `pixels` for the block, then put back: `evaluate` is one
    thread, and a run never comes here."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(before or 0, pixels)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def stored_jpeg(img: Image.Image, max_side: int, reducing_gap: float = ImageConfig.resize_reducing_gap) -> bytes:
    """The image exactly as a run stores it (the image stage's own `normalise`), so evaluation and
    the benchmarks score what the detectors see in a run. Handed over losslessly (PNG, at the
    fastest compression: the same pixels, and a third of the time of the default level, which was
    most of this function's); the size and blank checks are off: every labelled sample must be scored."""
    lossless = io.BytesIO()
    img.convert("RGB").save(lossless, "PNG", compress_level=1)
    return normalise(lossless.getvalue(), ImageConfig(max_side=max_side, min_side=1, min_stddev=0.0,
                                                      resize_reducing_gap=reducing_gap)).jpeg


def stored_as_a_run(sample: Sample, max_side: int, reducing_gap: float = ImageConfig.resize_reducing_gap,
                    draft_supersample: int = ImageConfig.draft_supersample) -> bytes:
    """The stored JPEG a run would make of this sample: from its file's own bytes where it has one the
    image stage accepts, so that everything `normalise` does to a download happens here too (alpha
    composited on white, embedded ICC profiles converted to sRGB, EXIF orientation, large JPEGs decoded
    at reduced DCT scale); decoding first and handing the pixels over losslessly would drop the alpha
    channel, ignore the profile and always decode in full. Samples without such a file (composites,
    arrays) or in a format a run rejects as unsupported are stored from their pixels (`stored_jpeg`). A file
    over the default --max_pixels, which a default run refuses before detection, is stored as a run with the cap
    raised to admit it would store it (up to LABELLED_MAX_PIXELS, above Pillow's guard too): the detectors are
    measured on it, and `metrics` reports it apart."""
    if sample.original is not None:
        cfg = ImageConfig(max_side=max_side, min_side=1, min_stddev=0.0, resize_reducing_gap=reducing_gap,
                          draft_supersample=draft_supersample)
        try:
            return normalise(sample.original, cfg).jpeg
        except ImageRejected as rejected:
            # A format a run does not take (the tuning part's BMP and PPM) is still scored, from its pixels,
            # and a photograph over the pixel cap with the cap raised, so that every labelled photograph counts;
            # anything else wrong with a labelled file is an error.
            if rejected.reason == "too_many_pixels":
                with _pillow_pixel_guard(LABELLED_MAX_PIXELS):
                    return normalise(sample.original, replace(cfg, max_pixels=LABELLED_MAX_PIXELS)).jpeg
            if rejected.reason != "unsupported_format":
                raise
    return stored_jpeg(sample.image, max_side, reducing_gap)


def score_set(samples: list[Sample], specs: list[DetectorSpec], runtime: RuntimeConfig,
              max_side: int = 512, reducing_gap: float = ImageConfig.resize_reducing_gap) -> list[dict[str, float]]:
    """Per sample, {"<detector>.<class>": best score} over every detector, on the image as a run with
    this --max_side and --resize_reducing_gap stores it."""
    return score_stored([stored_as_a_run(sample, max_side, reducing_gap) for sample in samples], specs, runtime)


def score_stored(jpegs: list[bytes], specs: list[DetectorSpec], runtime: RuntimeConfig) -> list[dict[str, float]]:
    """Per stored JPEG, {"<detector>.<class>": best score} over every detector and view."""
    photos = [Photo(str(i), image=jpeg) for i, jpeg in enumerate(jpegs)]
    scores: list[dict[str, float]] = [{} for _ in jpegs]
    for spec in specs:
        session = shared_session(spec, runtime)
        for index, photo in enumerate(photos):
            for cls, value in photo_scores(spec, session, [photo], runtime.tile_min_side)[0].items():
                scores[index][spec.score_name(cls)] = value
    return scores


def removes(specs: list[DetectorSpec], fusion: Fusion | None = None) -> Callable[[dict[str, float]], bool]:
    """Whether a run with these detectors (and fusion model) keeps an image with these scores out of
    the dataset: rejected, or held for review (the detect stage's own rule)."""
    rule = rule_for(specs, fusion)
    return lambda scores: rule.decide(scores).decision != KEPT


def report(samples: list[Sample], scores: list[dict[str, float]], specs: list[DetectorSpec],
           fusion: Fusion | None = None) -> dict:
    people = [i for i, s in enumerate(samples) if s.has_person]
    others = [i for i, s in enumerate(samples) if not s.has_person]

    def rates(rejects: Callable[[dict[str, float]], bool]) -> dict:
        caught = [samples[i].name for i in people if rejects(scores[i])]
        kept = [samples[i].name for i in others if not rejects(scores[i])]
        return {"recall": round(len(caught) / max(1, len(people)), 4),
                "keep_rate": round(len(kept) / max(1, len(others)), 4),
                "missed": sorted(samples[i].name for i in people if not rejects(scores[i])),
                "falsely_rejected": sorted(samples[i].name for i in others if rejects(scores[i]))}

    human_specs = [spec for spec in specs if spec.human_classes]
    result = {
        "images": len(samples), "with_people": len(people), "without_people": len(others),
        "thresholds": {spec.name: spec.thresholds for spec in specs},
        "fusion": None if fusion is None else {"sha256": fusion.sha256, "reject_at": fusion.reject_at,
                                               "review_from": fusion.review_from},
        "per_detector": {spec.name: rates(removes([spec])) for spec in human_specs},
        "combined": rates(removes(specs, fusion)),
        "scores": {samples[i].name: scores[i] for i in range(len(samples))},
    }
    return result


def leak_report(samples: list[Sample], scores: list[dict[str, float]], specs: list[DetectorSpec],
                fusion: Fusion | None = None) -> dict:
    """Recall on the leak samples (all contain a person), per human detector and combined."""
    def rates(rejects: Callable[[dict[str, float]], bool]) -> dict:
        missed = sorted(s.name for s, score in zip(samples, scores, strict=True) if not rejects(score))
        return {"recall": round(1 - len(missed) / max(1, len(samples)), 4), "missed": missed}

    return {"images": len(samples),
            "per_detector": {spec.name: rates(removes([spec])) for spec in specs if spec.human_classes},
            "combined": rates(removes(specs, fusion)),
            "scores": {sample.name: score for sample, score in zip(samples, scores, strict=True)}}


def evaluate(specs: list[DetectorSpec], runtime: RuntimeConfig, max_side: int = 512,
             fusion: Fusion | None = None, reducing_gap: float = ImageConfig.resize_reducing_gap) -> dict:
    real = package_photos()
    by_file = {sample.name.rsplit("/", 1)[1]: sample.image for sample in real}
    samples, leaked = real + composites(by_file), leaks(by_file)
    scores = score_set(samples + leaked, specs, runtime, max_side, reducing_gap)
    result = report(samples, scores[:len(samples)], specs, fusion)
    result["leaks"] = leak_report(leaked, scores[len(samples):], specs, fusion)
    result["resize_reducing_gap"] = reducing_gap  # how the scored images were stored
    return result


def _share(count: int, total: int) -> float:
    return count / max(1, total)


def iter_summary(result: dict) -> Iterator[str]:
    # Rates printed from the counts, not from the stored ones (rounded to four places already: a
    # second rounding can land on the wrong side of a tenth of a percent).
    people, others = result["with_people"], result["without_people"]
    yield f"{result['images']} images: {people} with people, {others} without"
    for name, rates in [*result["per_detector"].items(), ("combined", result["combined"])]:
        missed, wrong = len(rates["missed"]), len(rates["falsely_rejected"])
        yield (f"  {name:16s} recall {1 - _share(missed, people):.1%}  keep-rate {1 - _share(wrong, others):.1%}"
               f"  missed {missed}  falsely rejected {wrong}")
    if result["combined"]["missed"]:
        yield "  missed: " + ", ".join(result["combined"]["missed"])
    if "leaks" in result:
        leaked = result["leaks"]
        yield f"{leaked['images']} leak images (hands, headless torsos, tiny people; recall only, not in the bar):"
        for name, rates in [*leaked["per_detector"].items(), ("combined", leaked["combined"])]:
            missed = len(rates["missed"])
            yield f"  {name:16s} recall {1 - _share(missed, leaked['images']):.1%}  missed {missed}"
        if leaked["combined"]["missed"]:
            yield "  missed: " + ", ".join(leaked["combined"]["missed"])


def write(result: dict, path: str, written: list[str] | None = None, name: str | None = None) -> None:
    """`evaluate --json`: written whole or not at all (io/whole_file.py). A stop (Ctrl-C, SIGTERM) during `write_text`
    left a cut-off JSON under the name, an earlier result lost. Once renamed into place, `name` is in `written`."""
    write_whole(path, (json.dumps(result, indent=2, sort_keys=True) + "\n").encode(), written, name)
