"""The model registry: which ONNX detectors exist, where their file is, how to feed them and how
to read their outputs. Built-in entries live in `models/registry.json`; users add their own in a
JSON file of the same shape (`--model_registry`), without code changes.

Every entry is validated when the job is built, so a typo fails at launch, not on a worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.detectors.decoders import decoded_classes, output_names
from pipeline.detectors.model_json import NotUTF8, comment_problems, unique_keys, unknown_keys, utf8_text
from pipeline.detectors.probes import Probe, ProbeError, read_probes
from pipeline.io.file_reads import is_remote, open_regular_file, read_bytes, size_and_kind
from pipeline.io.regular_files import read_at_most

# models/ beside the package in a checkout (editable install); PASS_MODELS where the package is
# installed elsewhere (the worker image sets it to the folder it fetched the models into).
MODELS_DIR = Path(os.environ.get("PASS_MODELS") or Path(__file__).resolve().parents[2] / "models")
BUILTIN_REGISTRY = MODELS_DIR / "registry.json"
DECODERS = ("score_maps", "ssd", "ssd_logits", "yolo", "classifier")
RESIZES = ("stretch", "letterbox", "resize_center_crop")
ALIGNS = ("top_left", "center")


class RegistryError(ValueError):
    pass


class ChecksumError(RegistryError):
    pass


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the model's input tensor."""

    size: int  # square side fed to the model
    resize: str = "stretch"  # stretch | letterbox (keep aspect, pad) | resize_center_crop (to resize_to, crop)
    resize_to: int = 0
    # Where a letterboxed image sits on its square: top_left (pad right/bottom) or center (pad both
    # sides evenly, as MediaPipe trains and runs its detectors; padded at the top-left instead, their
    # scores on wide landscapes rise, the image's edge against the padding looking like a person).
    align: str = "top_left"
    layout: str = "NCHW"  # or NHWC
    channels: str = "RGB"  # or BGR
    dtype: str = "float32"  # or uint8 (fed raw 0-255)
    scale: float = 1.0  # multiplies pixel values (e.g. 1/255) before mean/std
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    dynamic_hw: bool = False  # the file declares a fixed H, W: made symbolic at load (CenterFace)


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    kind: str  # person | face | nsfw | other: for reports
    file: str  # resolved: absolute path or a Beam filesystem URI (gs://…)
    sha256: str
    input: InputSpec
    decoder: dict[str, Any]
    human_classes: tuple[str, ...] = ()
    nsfw_classes: tuple[str, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)
    review_band: dict[str, float] = field(default_factory=dict)  # lower end of the borderline band per class
    tiles: bool = False
    default: bool = False
    license: str = ""
    provenance: str = ""
    # decoder.context_probes, read and checked (pipeline/detectors/probes.py): context classes scored from an
    # intermediate tensor of the same pass.
    probes: tuple[Probe, ...] = ()

    def score_name(self, cls: str) -> str:
        return f"{self.name}.{cls}"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.human_classes + self.nsfw_classes

    @property
    def context_columns(self) -> dict[str, int]:
        """{context class: its column}: classes the decoder scores besides the deciding ones (a fusion model
        may read them; no threshold, band or per-detector rule uses them). Empty for most detectors."""
        return self.decoder.get("context_columns") or {}

    @property
    def context_classes(self) -> tuple[str, ...]:
        return tuple(self.context_columns) + tuple(probe.cls for probe in self.probes)

    @property
    def context_sources(self) -> dict[str, int | str]:
        """{context class: where its score comes from}: a column index, or a probe file's sha256. Two entries
        that agree here give a fusion model reading their context classes the same numbers."""
        return {**self.context_columns, **{probe.cls: probe.sha256 for probe in self.probes}}

    @property
    def probe_outputs(self) -> tuple[str, ...]:
        """The intermediate tensors the probes read, each once, in the probes' order."""
        return tuple(dict.fromkeys(probe.input for probe in self.probes))

    @property
    def scored_classes(self) -> tuple[str, ...]:
        return self.classes + self.context_classes


def resolve_file(file: str, registry_path: str) -> str:
    if is_remote(file) or posixpath.isabs(file):
        return file
    base = registry_path.rsplit("/", 1)[0] if "/" in registry_path else "."
    if is_remote(registry_path):
        return f"{base}/{file}"
    return str((Path(base) / file).resolve())


def _spec(entry: dict[str, Any], registry_path: str) -> DetectorSpec:
    where = f"{registry_path}: detector {entry.get('name', '?')!r}"
    try:
        raw_input = dict(entry["input"])
        for key in ("mean", "std"):
            if key in raw_input:
                raw_input[key] = tuple(float(v) for v in raw_input[key])
        spec = DetectorSpec(
            name=str(entry["name"]), kind=str(entry.get("kind", "other")),
            file=resolve_file(entry["file"], registry_path),
            sha256=str(entry["sha256"]).lower(), input=InputSpec(**raw_input), decoder=dict(entry["decoder"]),
            human_classes=tuple(entry.get("human_classes", ())), nsfw_classes=tuple(entry.get("nsfw_classes", ())),
            thresholds={k: float(v) for k, v in entry.get("thresholds", {}).items()},
            review_band={k: float(v) for k, v in entry.get("review_band", {}).items()},
            tiles=bool(entry.get("tiles", False)), default=bool(entry.get("default", False)),
            license=str(entry.get("license", "")), provenance=str(entry.get("provenance", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # AttributeError: thresholds given as a list
        raise RegistryError(f"{where}: {type(err).__name__}: {err}") from None
    if "context_probes" in spec.decoder:
        try:
            probes = read_probes(spec.decoder["context_probes"], lambda file: resolve_file(file, registry_path))
        except ProbeError as err:
            raise RegistryError(f"{where}: {err}") from None
        spec = dataclasses.replace(spec, probes=probes)
    problems = _input_problems(spec.input) + _decision_problems(spec, entry)
    if spec.decoder.get("type") not in DECODERS:
        problems.append(f"decoder.type must be one of {', '.join(DECODERS)}")
    elif spec.decoder["type"] == "ssd_logits" and not (
            isinstance(spec.decoder.get("outputs"), dict) and spec.decoder["outputs"]
            and all(isinstance(names, list) and names for names in spec.decoder["outputs"].values())):
        problems.append('decoder.outputs must map each class to its logit outputs: {"person": ["Identity_1"]}')
    elif not _names_outputs(spec.decoder):
        problems.append(f"decoder of type {spec.decoder['type']} must name its outputs (models/README.md)")
    if spec.input.resize not in RESIZES:
        problems.append(f"input.resize must be one of {', '.join(RESIZES)}")
    if spec.input.align not in ALIGNS:
        problems.append(f"input.align must be one of {', '.join(ALIGNS)}")
    if spec.input.layout not in ("NCHW", "NHWC") or spec.input.channels not in ("RGB", "BGR"):
        problems.append("input.layout is NCHW or NHWC, input.channels RGB or BGR")
    if spec.input.dtype not in ("float32", "uint8"):
        problems.append("input.dtype is float32 or uint8")
    if len(spec.sha256) != 64:
        problems.append("sha256 must be 64 hex digits")
    problems += _column_problems(spec.decoder) + _context_problems(spec) + _probe_problems(spec)
    if not spec.classes:
        problems.append("no human_classes or nsfw_classes: the detector would decide nothing")
    # A class its decoder never gives reads as 0 on every photo: an "NSFW" for a decoder's "nsfw" passed every other
    # check (the canary asks human classes only) and rejected nothing
    given = decoded_classes(spec.decoder)
    unknown = [cls for cls in spec.classes if given and cls not in given]
    if unknown:
        problems.append(f"{', '.join(map(repr, unknown))} not among the classes its decoder gives "
                        f"({', '.join(map(repr, sorted(given)))})")
    for cls in spec.classes:
        if cls not in spec.thresholds:
            problems.append(f"no threshold for class {cls!r}")
        elif not spec.review_band.get(cls, 0.0) <= spec.thresholds[cls]:
            problems.append(f"review_band of {cls!r} is above its threshold")
    if problems:
        raise RegistryError(f"{where}: " + "; ".join(problems))
    return spec


# A model's square input side: anything a detector is trained at (96 .. 1024 here) with room, never one whose
# tensor alone would exhaust a worker (100,000 px is 120 GB a view in float32).
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 16, 4096


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _input_problems(spec: InputSpec) -> list[str]:
    """An input a model can be fed: a bounded side, and a normalisation that keeps the pixels (a std of 0
    or a NaN makes every input the same non-number, which the detector then reads as 'no person')."""
    problems = []
    if not _whole(spec.size) or not MIN_INPUT_SIDE <= spec.size <= MAX_INPUT_SIDE:
        problems.append(f"input.size must be a whole number in {MIN_INPUT_SIDE} .. {MAX_INPUT_SIDE}")
    elif not _whole(spec.resize_to) or not (spec.resize_to == 0 or spec.size <= spec.resize_to <= 2 * MAX_INPUT_SIDE):
        problems.append(f"input.resize_to must be 0 or a whole number in input.size .. {2 * MAX_INPUT_SIDE}")
    # Normalisations models use: scale 1 or 1/255, mean 0..255, std 1..255 or about 0.2. Past these bounds
    # the pixels vanish into a near-constant input (scale 1e-30, std 1e30, mean 1e30), finite but blank,
    # and a detector scores a person as nothing.
    if isinstance(spec.scale, bool) or not isinstance(spec.scale, int | float) or not (
            math.isfinite(spec.scale) and 1e-4 <= spec.scale <= 1e4):
        problems.append("input.scale must be a number in 0.0001 .. 10000")
    for name, values in (("mean", spec.mean), ("std", spec.std)):
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            problems.append(f"input.{name} must be three finite numbers, one per channel")
    if len(spec.mean) == 3 and not all(abs(v) <= 1000 for v in spec.mean):
        problems.append("input.mean must be within -1000 .. 1000")
    if len(spec.std) == 3 and not all(1e-3 <= v <= 1000 for v in spec.std):
        problems.append("input.std must be within 0.001 .. 1000 (not 0: every pixel divides by it)")
    if not isinstance(spec.dynamic_hw, bool):
        problems.append("input.dynamic_hw must be true or false")
    return problems


def _clip_problem(spec: DetectorSpec) -> str:
    """Why an `ssd_logits` clip keeps a score from ever reaching a threshold of `spec`, or ''. Scores are
    sigmoid(clip(logit)): at most sigmoid(clip). A clip of 0.8 capped the palm at 0.69, under its 0.7
    threshold: that detector could never reject a photo."""
    if spec.decoder.get("type") != "ssd_logits" or "clip" not in spec.decoder:
        return ""
    clip = spec.decoder["clip"]
    ceiling = 1 / (1 + math.exp(-clip)) if isinstance(clip, int | float) and not isinstance(clip, bool) and \
        math.isfinite(clip) and clip > 0 else None
    if ceiling is not None and all(value <= ceiling for value in spec.thresholds.values()):
        return ""
    return f"decoder.clip {clip!r} caps scores below a threshold: sigmoid(clip) must reach every threshold of the entry"


def _decision_problems(spec: DetectorSpec, entry: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("tiles", "default"):
        if key in entry and not isinstance(entry[key], bool):  # bool("false") is True
            problems.append(f"{key} must be true or false, not {entry[key]!r}")
    for key in ("sigmoid", "softmax"):  # the decoder's switches: "false" read as true capped scores below thresholds
        if key in spec.decoder and not isinstance(spec.decoder[key], bool):
            problems.append(f"decoder.{key} must be true or false, not {spec.decoder[key]!r}")
    if unreachable := _clip_problem(spec):
        problems.append(unreachable)
    if spec.decoder.get("type") == "ssd" and isinstance(spec.decoder.get("class_names"), dict):
        keys = list(spec.decoder["class_names"])
        # Class ids as the model gives them: "1" and "01" both meant class 1, and one of the names was lost
        if not all(isinstance(key, str) and key.isascii() and key.isdigit() and str(int(key)) == key for key in keys):
            problems.append(f"decoder.class_names keys must be class numbers written plainly, not {keys[:5]}")
    for what, values in (("thresholds", spec.thresholds), ("review_band", spec.review_band)):
        strays = [key for key in values if key not in spec.classes]
        if strays:  # a band for "NSFW" beside the class "nsfw" removed the band, silently
            problems.append(f"{what} for {', '.join(map(repr, strays))}, which is no human or nsfw class of it")
    for what, values in (("thresholds", spec.thresholds), ("review_band", spec.review_band)):
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values.values()):
            problems.append(f"{what} must be numbers in 0 .. 1 (scores are)")
    # float() took what stood there: a threshold true was 1.0 (nothing short of a score of 1 rejected), a band false
    # 0.0 (every photo held for review), "0.5" passed as text
    for what in ("thresholds", "review_band"):
        given = entry.get(what, {})
        if isinstance(given, dict) and not all(isinstance(v, int | float) and not isinstance(v, bool)
                                               for v in given.values()):
            problems.append(f"{what} must be JSON numbers, not text or true/false")
    for key in ("name", "kind", "license", "provenance"):  # str() took whatever stood there: a license 5 was "5"
        if key in entry and not isinstance(entry[key], str):
            problems.append(f"{key} must be a text, not {type(entry[key]).__name__}")
    for what in ("human_classes", "nsfw_classes"):  # a text alone was read as its letters
        if not (isinstance(entry.get(what, []), list) and all(isinstance(cls, str) for cls in entry.get(what, []))):
            problems.append(f"{what} must be a list of class names")
    # Names a result line, a fusion feature (DETECTOR.CLASS) and --detect_thresholds spell: any text stood there, a
    # line break forging a line of evaluate's results, ESC driving the terminal, a dot reading as another detector's.
    names = [("name", spec.name)] + [(f"{what} entry", cls) for what in ("human_classes", "nsfw_classes")
                                     for cls in entry.get(what, []) if isinstance(cls, str)]
    # ASCII: a letter of another script that looks like a Latin one (Cyrillic о) read as the built-in it resembles.
    problems += [f"{what} {value!r} must be a plain name (ASCII letters, digits, underscores; no digit first)"
                 for what, value in names if not (value.isascii() and value.isidentifier())]
    if spec.name in ("default", "none"):  # --detectors=default selects the defaults, none nothing: never this one
        problems.append(f"name {spec.name!r} is a word of --detectors (default, none): no detector can be named so")
    # a misspelt "review_bands" left the detector without its review band, silently
    return problems + unknown_keys(entry, ENTRY_KEYS, "an entry")


ENTRY_KEYS = frozenset({"name", "kind", "file", "sha256", "input", "decoder", "human_classes", "nsfw_classes",
                        "thresholds", "review_band", "tiles", "default", "license", "provenance"})


# COCO has 80 classes, Open Images 601: room for any detector's other classes, not for a registry that would make
# every view allocate an array per class.
MAX_CONTEXT_CLASSES = 1000


def _column_problems(decoder: dict[str, Any]) -> list[str]:
    """decoder.column, where given: the index of the class column a score_maps decoder reads (-1 or "1" would
    read another column, or fail on a worker)."""
    if "column" in decoder and (not _whole(decoder["column"]) or not 0 <= decoder["column"] < 10_000):
        return ["decoder.column must be a whole number in 0 .. 9999"]
    return []


def _context_problems(spec: DetectorSpec) -> list[str]:
    """`context_columns`: a score_maps decoder reading one column of [N, A, C] outputs (the other classes of
    a COCO or Open Images detector), each context class a new name mapped to a column index."""
    columns = spec.decoder.get("context_columns")
    if columns is None:
        return []
    if spec.decoder.get("type") != "score_maps" or "column" not in spec.decoder:
        return ["decoder.context_columns needs a score_maps decoder that reads a column of its outputs"]
    if not isinstance(columns, dict) or not columns:
        return ['decoder.context_columns maps each context class to its column: {"bird": 14}']
    if len(columns) > MAX_CONTEXT_CLASSES:  # each is an array over every anchor of every view, and a score per photo
        return [f"decoder.context_columns names {len(columns)} classes; at most {MAX_CONTEXT_CLASSES}"]
    problems = []
    for cls, column in columns.items():
        if not (isinstance(cls, str) and cls.isidentifier()):
            problems.append(f"context class {cls!r} must be a plain name")
        elif cls in spec.classes or cls in spec.decoder.get("outputs", {}):
            problems.append(f"context class {cls!r} is also a deciding class or a class of decoder.outputs")
        if not _whole(column) or not 0 <= column < 10_000:
            problems.append(f"context class {cls!r}: column must be a whole number in 0 .. 9999")
    return problems


def _probe_problems(spec: DetectorSpec) -> list[str]:
    """A probe's class is a new name: not a deciding class, a class of the decoder's outputs nor a context column
    (two sources for one score name would make a fusion model read whichever came last). A tiling detector takes no
    probe: a run would keep the best score over its views, and `fit_probe` fits on whole images."""
    if not spec.probes:
        return []  # (and an entry without probes is judged by the other checks alone, whatever its shapes)
    if spec.tiles:
        return ["decoder.context_probes: a detector with tiles takes no probe (fit on whole images only)"]
    named, outputs, columns = (spec.decoder.get(key) for key in ("class_names", "outputs", "context_columns"))
    decoded = [*(named.values() if isinstance(named, dict) else named if isinstance(named, list) else ()),
               *(outputs if isinstance(outputs, dict) else ()), *(columns if isinstance(columns, dict) else ())]
    taken = {str(name) for name in (*spec.classes, *decoded)}
    return [f"context probe {probe.cls!r} is also a class the detector decides on or decodes, or a context column"
            for probe in spec.probes if probe.cls in taken]


def _names_outputs(decoder: dict[str, Any]) -> bool:
    """Whether the decoder names the model outputs it reads, each a non-empty text."""
    try:
        names = output_names(decoder)
    except (KeyError, TypeError, AttributeError):
        return False
    return bool(names) and all(isinstance(name, str) and name for name in names)


# A registry or a fusion model, read whole at launch: the shipped ones are at most 0.4 MB (a trees model).
MAX_JSON_BYTES = 16 << 20


def read_json_bytes(path: str, what: str) -> bytes:
    """The bytes of a registry or fusion model file (`what` names it in a refusal): only a regular file, local or on
    any Beam filesystem, of at most MAX_JSON_BYTES. A named pipe given as --fusion was waited on for good at launch,
    a link to /dev/zero given as --model_registry read until memory ran out (MemoryError, the job failed)."""
    try:
        with open_regular_file(path) as handle:
            data = read_at_most(handle, MAX_JSON_BYTES + 1)
    except (OSError, ValueError) as err:  # Beam raises BeamIOError (an OSError) for missing files
        raise RegistryError(f"cannot read {what} {path}: {err}"[:500]) from None
    if len(data) > MAX_JSON_BYTES:
        raise RegistryError(f"{what} {path} is over {MAX_JSON_BYTES:,} bytes: no registry or model is that large")
    return data


def json_text(data: bytes, where: str) -> str:
    """A registry's or a fusion model's bytes as text (model_json.utf8_text), refused naming the file."""
    try:
        return utf8_text(data)
    except NotUTF8 as err:
        raise RegistryError(f"{where}: {err}") from None


# A registry's own keys beside its entries: a description (a text, or a list of texts for lines), and the fusion model
# it names (the built-in one's, or a --model_registry's own, which decides where --fusion is not given).
REGISTRY_KEYS = frozenset({"_comment", "detectors", "fusion"})
FUSION_ENTRY_KEYS = frozenset({"file", "sha256", "provenance"})


def _registry_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong beside the entries: a key no registry holds (one misspelt, or a "description" or "notes", was
    ignored whatever it held), a _comment that is no text, a fusion entry of another shape."""
    problems = unknown_keys(data, REGISTRY_KEYS, "a registry") + comment_problems(data)
    if "fusion" in data:
        problems += _fusion_entry_problems(data["fusion"])
    return problems


def _fusion_entry_problems(fusion: Any) -> list[str]:
    """The registry's "fusion" entry, of its shape: an empty one is refused too (it named no model, and the built-in
    one decided: leave the entry out for that, or pass --fusion=none for per-detector thresholds)."""
    if not isinstance(fusion, dict):
        return [f'fusion must be an object {{"file", "sha256"}}, not {type(fusion).__name__}']
    problems = [f"fusion: {problem}" for problem in unknown_keys(fusion, FUSION_ENTRY_KEYS, "it")]
    missing = sorted({"file", "sha256"} - set(fusion))
    if missing:
        problems.append(f"fusion needs {' and '.join(missing)}")
    problems += [f"fusion.{key} must be a text, not {type(fusion[key]).__name__}"
                 for key in sorted(FUSION_ENTRY_KEYS) if key in fusion and not isinstance(fusion[key], str)]
    digest = fusion.get("sha256")
    if isinstance(digest, str) and not (len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)):
        problems.append("fusion.sha256 must be 64 hex digits")
    return problems


def read_registry(path: str) -> dict[str, DetectorSpec]:
    return _read_registry(path)[0]


def _registry_data(path: str) -> dict[str, Any]:
    """The registry file's JSON, checked as a whole (not yet its entries): an object of a "detectors" list of
    objects, its own keys of their shapes."""
    text = json_text(read_json_bytes(path, "registry"), path)
    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as err:
        raise RegistryError(f"{path}: not JSON: {type(err).__name__}: {err}"[:300]) from None
    entries = data.get("detectors", []) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RegistryError(f'{path}: a registry is an object whose "detectors" is a list of objects')
    if problems := _registry_problems(data):
        raise RegistryError(f"{path}: " + "; ".join(problems))
    return data


def fusion_entry(path: str) -> dict[str, str] | None:
    """The registry's "fusion" entry ({"file", "sha256"}, and its provenance), or None where it names none."""
    return _registry_data(path).get("fusion") or None


def _read_registry(path: str) -> tuple[dict[str, DetectorSpec], frozenset[str]]:
    """The registry's detectors by name, and the names of those whose entry says "default" itself."""
    data = _registry_data(path)
    entries = data.get("detectors", [])
    specs = [_spec(entry, path) for entry in entries]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise RegistryError(f"{path}: detector names repeat")
    return {spec.name: spec for spec in specs}, frozenset(str(entry.get("name")) for entry in entries
                                                          if "default" in entry)


def load_registry(extra: str | None = None) -> dict[str, DetectorSpec]:
    """The built-in detectors, plus (and overridden by) those of `extra`."""
    registry = read_registry(str(BUILTIN_REGISTRY))
    if extra:
        specs, saying_default = _read_registry(extra)
        for name, spec in specs.items():
            # An entry overriding a built-in keeps its place in the default selection unless it says "default"
            # itself: one that left it out dropped the detector from every default run, silently.
            if name in registry and name not in saying_default:
                spec = dataclasses.replace(spec, default=registry[name].default)
            registry[name] = spec
    return registry


def select(registry: dict[str, DetectorSpec], names: str) -> list[DetectorSpec]:
    """'default' -> the registry's default detectors; 'none' -> []; 'a,b' -> those, in that order."""
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    if wanted == ["none"]:
        return []
    if wanted in ([], ["default"]):
        chosen = [spec for spec in registry.values() if spec.default]
        if not chosen:  # a registry overriding every default without "default": true ran no detector at all
            raise RegistryError("--detectors=default selects no detector: the registry marks none default "
                                "(--detectors=none runs none on purpose)")
        return chosen
    unknown = [name for name in wanted if name not in registry]
    if unknown:
        raise RegistryError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(sorted(registry))}")
    if len(set(wanted)) != len(wanted):
        raise RegistryError(f"--detectors names a detector twice: {','.join(wanted)}")
    return [registry[name] for name in wanted]


def _pairs(text: str, flag: str) -> dict[tuple[str, str], float]:
    """'centerface.face=0.6,ssdlite_person.person=0.45' -> {(detector, class): value}."""
    out = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, _, value = item.partition("=")
        detector, _, cls = name.strip().partition(".")
        try:
            number = float(value)
        except ValueError:
            raise RegistryError(f"{flag}: {item!r} is not DETECTOR.CLASS=NUMBER") from None
        if not (detector and cls) or not 0.0 <= number <= 1.0:
            raise RegistryError(f"{flag}: {item!r} is not DETECTOR.CLASS=NUMBER with 0 <= NUMBER <= 1")
        if (detector, cls) in out:  # the last one silently won
            raise RegistryError(f"{flag}: {detector}.{cls} is given twice")
        out[(detector, cls)] = number
    return out


def with_overrides(specs: list[DetectorSpec], thresholds: str = "", bands: str = "") -> list[DetectorSpec]:
    """The selected detectors with thresholds and review-band starts changed from the command line
    (--detect_thresholds, --review_band), checked like registry entries."""
    new_thresholds, new_bands = _pairs(thresholds, "--detect_thresholds"), _pairs(bands, "--review_band")
    by_name = {spec.name: spec for spec in specs}
    for detector, cls in [*new_thresholds, *new_bands]:
        if detector not in by_name or cls not in by_name[detector].classes:
            raise RegistryError(f"no selected detector class {detector}.{cls} to set a threshold or band for")
    out = []
    for spec in specs:
        spec_thresholds = {cls: new_thresholds.get((spec.name, cls), value) for cls, value in spec.thresholds.items()}
        # A threshold lowered below the registry's band start narrows the band (to nothing); a band
        # given explicitly above its threshold is an error.
        spec_bands = {cls: new_bands.get((spec.name, cls),
                                         min(spec.review_band.get(cls, spec_thresholds[cls]), spec_thresholds[cls]))
                      for cls in spec.classes}
        changed = dataclasses.replace(spec, thresholds=spec_thresholds, review_band=spec_bands)
        if unreachable := _clip_problem(changed):  # a threshold raised past the entry's ceiling could never fire
            raise RegistryError(f"--detect_thresholds: {spec.name}: {unreachable}")
        for cls in changed.classes:
            if changed.review_band[cls] > changed.thresholds[cls]:
                raise RegistryError(f"{spec.name}.{cls}: review band starts at {changed.review_band[cls]}, above "
                                    f"its threshold {changed.thresholds[cls]}")
        out.append(changed)
    return out


def check_model_outputs(spec: DetectorSpec, data: bytes) -> None:
    """At launch: the file parses as an ONNX model and has every output its decoder reads (else each photo's
    detection would fail on a worker, after the whole crawl)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise RegistryError(f"detector {spec.name}: {spec.file} is not an ONNX model ({type(err).__name__})") from None
    graph = model.graph
    missing = sorted(set(output_names(spec.decoder)) - {output.name for output in graph.output})
    if missing:
        raise RegistryError(f"detector {spec.name}: {spec.file} has no output {', '.join(map(repr, missing))} "
                            f"(it has {', '.join(repr(o.name) for o in graph.output)[:300]})")
    _check_probe_tensors(spec, model)
    if not spec.context_columns:
        return
    # Where the file declares its outputs' width (OIDv4: 24); a graph that leaves it symbolic (NanoDet's) is
    # checked by the canary's run at launch, where the decoder refuses a column beyond the output.
    columns = [int(spec.decoder["column"]), *spec.context_columns.values()]
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.name in output_names(spec.decoder) and dims and dims[-1].HasField("dim_value") \
                and max(columns) >= dims[-1].dim_value:
            raise RegistryError(f"detector {spec.name}: output {output.name!r} has {dims[-1].dim_value} columns; "
                                f"the decoder reads column {max(columns)}")


def _check_probe_tensors(spec: DetectorSpec, model: Any) -> None:
    """Each tensor a probe reads: computed by the graph, and, where shape inference says, float32 with the batch
    first and as many numbers a row as the probe has weights (else every batch would fail on a worker, or, with the
    batch elsewhere, a score would be read from several photographs' numbers)."""
    import onnx

    graph = model.graph
    produced = {name for node in graph.node for name in node.output} | {o.name for o in graph.output}
    unknown = [tensor for tensor in spec.probe_outputs if tensor not in produced]
    if unknown:
        raise RegistryError(f"detector {spec.name}: {spec.file} computes no tensor {', '.join(map(repr, unknown))} "
                            "that a context probe reads")
    if not spec.probes:
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        return  # no static information: the run-time checks (probes.py) still refuse a wrong tensor
    known = {value.name: value.type.tensor_type for value in (*inferred.value_info, *inferred.output)}
    for probe in spec.probes:
        tensor = known.get(probe.input)
        if tensor is None:
            continue
        where = f"detector {spec.name}: context probe {probe.cls!r} reads {probe.input!r}"
        if tensor.elem_type not in (0, onnx.TensorProto.FLOAT):
            raise RegistryError(f"{where}, a tensor of element type {tensor.elem_type}, not float32")
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
        if dims is None:
            continue
        if len(dims) < 2 or (dims[0].HasField("dim_value") and dims[0].dim_value != 1):
            raise RegistryError(f"{where}, of shape {[d.dim_value or d.dim_param for d in dims]}: the batch must be "
                                "its first axis, the features after it")
        rest = [d.dim_value for d in dims[1:]]
        if all(rest) and math.prod(rest) != len(probe.weights):
            raise RegistryError(f"{where}, {math.prod(rest)} numbers a row; the probe has {len(probe.weights)} weights")


# A detector's ONNX file: the built-in ones are 2-24 MB; a model far past this is no detector a worker should hold
# (a path to a 3 GB file or /dev/zero was read whole before its sha256 was checked: MemoryError, or no end).
MAX_MODEL_BYTES = 1 << 30


def _model_size_problem(path: str) -> str | None:
    size, kind = size_and_kind(path)
    if kind:  # a device (/dev/zero) or a pipe would be read without end
        return "is not a regular file"
    return f"holds {size:,} bytes, over {MAX_MODEL_BYTES:,}" if size is not None and size > MAX_MODEL_BYTES else None


def read_model(spec: DetectorSpec) -> bytes:
    """The model file's bytes (local or any Beam filesystem), refused unless its sha256 matches; a file that is no
    regular file or is over MAX_MODEL_BYTES is refused before it is read."""
    try:
        problem = _model_size_problem(spec.file)
        data = b"" if problem else read_bytes(spec.file)
    except (OSError, ValueError) as err:  # Beam raises BeamIOError (an OSError) for missing files
        raise RegistryError(f"detector {spec.name}: cannot read {spec.file}: {err}. For the default models run "
                            "`python models/fetch_models.py` (scripts/setup does)") from None
    if problem:
        raise RegistryError(f"detector {spec.name}: {spec.file} {problem}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ChecksumError(f"detector {spec.name}: {spec.file} has sha256 {digest}, registry says {spec.sha256}")
    return data
