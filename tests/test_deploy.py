"""The worker and launcher image: what can be checked without a Docker engine."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(requirement_prefix: str) -> str:
    requirements = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["gpu"]
    match = next(r for r in requirements if r.startswith(requirement_prefix))
    return match.split("==")[1]


def test_hadolint_is_clean():
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_versions_agree_with_pyproject():
    beam = pinned("apache-beam")
    assert f"ARG BEAM_VERSION={beam}" in DOCKERFILE
    assert "apache/beam_python3.11_sdk:${BEAM_VERSION}" in DOCKERFILE
    assert "ARG PYTHON_VERSION=3.11" in DOCKERFILE and PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12"
    assert pinned("onnxruntime-gpu") == "1.31.1" and "cuda:13." in DOCKERFILE and "cudnn" in DOCKERFILE
    assert 'pip install --no-compile --no-deps ".[gpu]"' in DOCKERFILE
    assert "['optional-dependencies']['gpu']" in DOCKERFILE
    # Layers in the order they change: dependencies, then models, then the code.
    order = [DOCKERFILE.index(step) for step in ("pip install --no-compile -r", "python models/fetch_models.py",
                                                 "COPY pipeline ./pipeline")]
    assert order == sorted(order)
    assert "pip uninstall -y onnxruntime" in DOCKERFILE  # the CPU wheel must not shadow the GPU one
    # The default detectors' files are fetched (checksummed) into the image and found there.
    assert "python models/fetch_models.py" in DOCKERFILE and "PASS_MODELS=/opt/pass-pipeline/models" in DOCKERFILE


def test_entrypoint_is_beam_boot_and_the_launcher_command_is_installed():
    entrypoints = re.findall(r"^ENTRYPOINT (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert entrypoints == ['["/opt/apache/beam/boot"]']
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in DOCKERFILE
    # The launcher's Cloud Run job (terraform/launcher.tf) runs `pass-pipeline`: the project's console script,
    # installed into the venv whose bin is on the image's PATH.
    assert PYPROJECT["project"]["scripts"]["pass-pipeline"] == "pipeline.launch:entry"
    assert 'ENV PATH="/opt/venv/bin:${PATH}"' in DOCKERFILE and "-m venv /opt/venv" in DOCKERFILE
    assert 'command = ["pass-pipeline"]' in (ROOT / "terraform" / "launcher.tf").read_text()
    # No Flex Template launcher: its launch makes the job only after the program has ended (README, Run on Google Cloud)
    assert "FLEX_TEMPLATE" not in DOCKERFILE and "template-launcher" not in DOCKERFILE


def test_no_secrets_baked_in():
    for line in DOCKERFILE.splitlines():
        if line.startswith(("ENV", "ARG")) or (line.startswith(" ") and "=" in line):
            assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS)\w*=\S", line, re.IGNORECASE), line
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in DOCKERFILE


@pytest.mark.parametrize("value", ["1_000", " 5", "-0", "inf", "٣"])
def test_a_number_spelled_otherwise_is_one_line_at_launch(tmp_path, capsys, value):
    """Only ASCII digits with a sign, a point and an exponent: int() and float() also read '1_000', ' 5', '-0',
    'inf' and other scripts' digits."""
    from pipeline.cli import main

    assert main(["run", f"--input={tmp_path / 'x.tsv'}", f"--output={tmp_path / 'out'}", f"--max_side={value}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "--max_side" in message and repr(value) in message
