"""How models/files/ssd_mobilenetv2_oidv4.onnx was made (run once; the result is committed, its sha256 is in
registry.json). Needs TensorFlow and tf2onnx, which the pipeline itself does not, and npm to fetch the
package; not part of scripts/setup:

    python3.11 -m venv /tmp/oidenv
    /tmp/oidenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "onnx==1.17.0" "numpy<2" \\
        "protobuf<4" onnxruntime
    /tmp/oidenv/bin/python models/convert_oidv4.py [--tarball mediapipe-objectron-0.4.1675468480.tgz]

Source: the npm package @mediapipe/objectron@0.4.1675468480 (Google's MediaPipe; its package.json says
Apache-2.0, the licence of the MediaPipe repository its models come from; the tarball has no LICENSE file
of its own). Its `objectron_solution_packed_assets.data` is an Emscripten file package: the package's own
`objectron_solution_packed_assets_loader.js` says that bytes [0, 184) are
`object_detection_oidv4_labelmap.txt` (the same file as `mediapipe/modules/objectron/` in the PyPI wheel
mediapipe==0.10.14, which does not ship the model) and bytes [184, 9987912) are
`object_detection_ssd_mobilenetv2_oidv4_fp16.tflite`: an SSD MobileNetV2 detector of 24 Open Images V4
classes, `Person` among them (the label map's line 4, counting its `???` background line as 0). The
tarball and both slices are checked against the sha256 values below; a mismatch stops the script.

The file keeps TFLite's interface: input `normalized_input_image_tensor` [1, 300, 300, 3] float32 NHWC RGB
in [-1, 1] (x / 127.5 - 1), outputs `raw_outputs/box_encodings` [1, 1917, 4] and
`raw_outputs/class_predictions` [1, 1917, 24] (one logit per anchor and class, before the sigmoid; no
box decoding or NMS in the graph: the pipeline reads the best `Person` logit, `score_maps` with `column`
4 and `sigmoid`). The batch is fixed at 1: the handler runs it view by view. Names are made run-independent
and provenance written into the file by `convert_mediapipe.finalize`, with the hash seed fixed: two
conversions gave the committed file byte for byte. The output goes to `ssd_mobilenetv2_oidv4.reconverted.onnx`
beside the committed file (never replacing it); the script prints the largest difference from the TFLite
model's outputs on a random input and whether its sha256 equals the registry's.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from pathlib import Path

from convert_mediapipe import (
    HERE,
    finalize,
    max_difference,
    npm_tarball,
    refuse_unless_sha256,
    registry_sha256,
    run_tf2onnx,
    sha256_of,
)

PACKAGE = "@mediapipe/objectron@0.4.1675468480"
TARBALL = "mediapipe-objectron-0.4.1675468480.tgz"
TARBALL_SHA256 = "fc3e37b326b05e8f596099c90b3e0931b05a56cd3160b9ac450b621794bac94c"
PACKED = "package/objectron_solution_packed_assets.data"
LABELS = (0, 184, "c148336a65f673013609a923fdcbdeec0f49df935045029c3746a3828a0e80e0")
TFLITE = (184, 9987912, "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6")
TFLITE_PATH = "third_party/mediapipe/modules/objectron/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
PERSON = 4
OUTPUT = "ssd_mobilenetv2_oidv4.onnx"
OPSET = 13


def extract(tarball: Path, work: Path) -> Path:
    """The model's bytes out of the packed assets, sha256-checked, written to `work`; the label map checked
    to name `Person` at the column the registry reads."""
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(PACKED)
        assert handle is not None  # for the type checker: a regular file of the tarball whose sha256 was checked
        packed = handle.read()  # read as bytes: no path is made from it
    start, end, expected = LABELS
    refuse_unless_sha256(packed[start:end], expected, "convert_oidv4", f"the label map in {PACKED}")
    if packed[start:end].decode("ascii").split("\n")[PERSON] != "Person":
        sys.exit("convert_oidv4: the label map does not name Person at column 4")
    start, end, expected = TFLITE
    refuse_unless_sha256(packed[start:end], expected, "convert_oidv4", f"the model in {PACKED}")
    model = work / "model.tflite"
    model.write_bytes(packed[start:end])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help=f"an already downloaded {TARBALL}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = npm_tarball(args.tarball, PACKAGE, TARBALL, TARBALL_SHA256, "convert_oidv4", Path(tmp))
        work = Path(tmp) / "work"
        work.mkdir()
        model = extract(tarball, work)
        out = HERE / "files" / OUTPUT.replace(".onnx", ".reconverted.onnx")
        run_tf2onnx(["-m", "tf2onnx.convert"], ["--tflite", str(model)], out, OPSET)
        finalize(out, f"{PACKED}[{TFLITE[0]}:{TFLITE[1]}] ({TFLITE_PATH})", TFLITE[2], TARBALL,
                 "Apache-2.0 (MediaPipe, @mediapipe/objectron)", "convert_oidv4.py + tf2onnx",
                 source_key="source_package")
        print(f"{OUTPUT}: max |TFLite - ONNX| on a random input = {max_difference(model, out):.2e}")
    digest = sha256_of(out.read_bytes())
    same = digest == registry_sha256().get(OUTPUT)
    print(f"{OUTPUT}: {out.name} sha256 {digest}; {'identical to' if same else 'DIFFERS from'} the registry's")


if __name__ == "__main__":
    main()
