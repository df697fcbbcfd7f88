"""The worker image and the Flex Template spec: what can be checked without a Docker engine."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pipeline.commands import flex_metadata

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


def test_entrypoint_is_beam_boot_and_launcher_is_present():
    entrypoints = re.findall(r"^ENTRYPOINT (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert entrypoints == ['["/opt/apache/beam/boot"]']
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in DOCKERFILE
    assert "/opt/google/dataflow/python_template_launcher" in DOCKERFILE
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/pass-pipeline/pipeline/commands/flex_main.py" in DOCKERFILE
    # The launcher's file, as the image lays it out (WORKDIR + COPY pipeline), is the module tested below.
    from pipeline.commands import flex_main

    launcher = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", DOCKERFILE).group(1)
    assert "WORKDIR /opt/pass-pipeline" in DOCKERFILE and "COPY pipeline ./pipeline" in DOCKERFILE
    assert ROOT / Path(launcher).relative_to("/opt/pass-pipeline") == Path(flex_main.__file__)


def test_no_secrets_baked_in():
    for line in DOCKERFILE.splitlines():
        if line.startswith(("ENV", "ARG")) or (line.startswith(" ") and "=" in line):
            assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS)\w*=\S", line, re.IGNORECASE), line
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in DOCKERFILE


def test_flex_template_spec_is_generated_from_the_options():
    committed = (ROOT / "flex_template" / "metadata.json").read_text()
    assert committed == flex_metadata.render(), \
        "run: python -m pipeline.commands.flex_metadata > flex_template/metadata.json"
    spec = json.loads(committed)
    names = [p["name"] for p in spec["parameters"]]
    assert {"input", "output", "max_side", "per_owner_cap", "near_dup_distance", "blocklist"} <= set(names)
    assert [p["name"] for p in spec["parameters"] if not p["isOptional"]] == ["output"]
    for parameter in spec["parameters"]:
        assert parameter["helpText"]
        for regex in parameter.get("regexes", []):
            re.compile(regex)


def test_flex_regexes_accept_and_refuse():
    by_name = {p["name"]: p for p in flex_metadata.metadata()["parameters"]}

    def ok(name, value):
        return all(re.match(regex, value) for regex in by_name[name].get("regexes", []))

    assert ok("output", "gs://my-bucket/releases/{YYYY-MM}") and not ok("output", "/local/path")
    assert ok("output", "gs://my-bucket") and ok("previous", "latest") and ok("previous", "gs://b-1/releases/2026-10")
    assert not ok("previous", "/local/release") and ok("release", "2026-11") and not ok("release", "a/b")
    assert ok("max_side", "512") and not ok("max_side", "big")
    assert ok("formats", "webdataset,parquet") and not ok("formats", "webdataset,jpeg")
    assert ok("blocklist", "gs://pass-lists/takedowns.txt,gs://pass-lists/ncmec.txt")
    # A refresh inherits these files: the template can name them on gs:// or give them empty, which the job takes
    # as "none" (a takedown list retired, the built-in registry again), and never a local path.
    for name, value in (("blocklist", "gs://lists/t.txt"), ("decontaminate", "gs://lists/eval/*.jpg,gs://lists/e.txt"),
                        ("review_decisions", "gs://lists/reviews.csv"), ("model_registry", "gs://lists/registry.json")):
        assert ok(name, value) and ok(name, "") and _job_takes(name, ""), name
        assert not ok(name, "/local/x") and not ok(name, "takedowns.txt"), name


INTS = ("0", "1", "7", "007", "+5", "-1", "-01", "-5", "1e3", "5.0", "abc", "", "1_000", "-0", " 5", "5 ", "٣")
FLOATS = ("0", "1", "0.5", ".5", "5.", "1e1", "2.5E-1", "+2", "-1", "-0.5", "nan", "inf", "abc", "", "1_0.5", "-0",
          "-0.0", " 5", "Infinity", "٣")
FLAGS = ("true", "True", "FALSE", "1", "0", "yes", "No", "maybe", "2", "")


def _job_takes(name: str, value: str, parse_only: bool = False) -> bool:
    """The job's own answer at launch: parsed (one line if not) and, unless `parse_only` (a choice may need other
    flags: --source=flickr its dates), no validate() problem naming the flag."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.commands.run import UsageError, unknown_flags
    from pipeline.options import PassOptions, validate

    argv = ["--input=gs://b/x", "--output=gs://b/o", f"--{name}={value}"]
    try:
        unknown_flags(argv)
    except UsageError:
        return False
    return parse_only or not [p for p in validate(PipelineOptions(argv).view_as(PassOptions)) if f"--{name}" in p]


def test_the_template_takes_every_value_the_job_takes_and_no_sign_it_refuses():
    """The regexes disagreed with the job: --verify_license=True and --connect_timeout=1e1 refused by the template
    and taken by the job; --max_side=-5 and --jpeg_quality=0 the other way; flags other than --verify_license and
    --detect_device had no regex. Ranges beyond the sign (a timeout of 0, --jpeg_quality=101) stay the job's to
    refuse at launch, in one line."""
    from pipeline.options import decimal, flag, integer

    checked = 0
    for action in flex_metadata.option_actions():
        regexes = next(p.get("regexes", []) for p in flex_metadata.metadata()["parameters"]
                       if p["name"] == action.dest)
        exact = bool(action.choices) or action.type is flag  # no range: the regex is the whole rule
        corpus = ([*map(str, action.choices), "tpu", "CPU"] if action.choices else FLAGS if action.type is flag
                  else INTS if action.type is integer else FLOATS if action.type is decimal else ())
        for value in corpus:
            template = bool(regexes) and all(re.match(regex, value) for regex in regexes)
            job = _job_takes(action.dest, value)
            assert template or not job, f"--{action.dest}={value!r}: the job takes it, the template refuses it"
            if exact:
                job = _job_takes(action.dest, value, parse_only=True)
            if exact or value in ("", "nan", "inf") or value.startswith("-") or (
                    value == "0" and action.type is integer):
                assert job or not template, f"--{action.dest}={value!r}: the template takes it, the job refuses it"
            checked += 1
    assert checked > 300


def test_the_launcher_runs_a_refresh_when_a_previous_release_is_named():
    from pipeline.commands.flex_main import command

    assert command(["--output=gs://b", "--previous=latest"]) == ["refresh", "--output=gs://b", "--previous=latest"]
    assert command(["--input=gs://b/x", "--output=gs://b/o"])[0] == "run"
    assert command(["--output=gs://b", "--release=2026-12", "--input=gs://b/x"])[0] == "refresh"  # a first release


# A representative option of each numeric kind of regex, and the values its range beyond the sign refuses (the job's
# to refuse, at launch, in one line), which the template's regex does not try to.
NUMERIC_KINDS = {
    flex_metadata.NON_NEGATIVE_INT: ("max_retries", lambda value: False),
    flex_metadata.POSITIVE_INT: ("max_bytes", lambda value: False),
    flex_metadata.MINUS_ONE_OR_MORE_INT: ("near_dup_dhash_distance", lambda value: value > 64),
    flex_metadata.NON_NEGATIVE_FLOAT: ("backoff_base", math.isinf),
}
# Characters int() and float() read beyond ASCII digits and a sign: '_' between digits, spaces around, other
# scripts' digits ('٣', '５'), and the letters of 'inf', 'nan' and 'infinity'.
_NUMBERISH = st.text(alphabet="0123456789+-._eE \t٣５infatyINFATY", max_size=10)
_SPELLINGS = st.one_of(_NUMBERISH, st.from_regex(r"\A[+-]?[0-9]{1,6}\Z"),
                       st.from_regex(r"\A[+-]?([0-9]{1,4}(\.[0-9]{0,3})?|\.[0-9]{1,3})([eE][+-]?[0-9]{1,3})?\Z"),
                       st.integers(-3, 10**6).map(str), st.floats(allow_nan=True).map(str))


def test_every_numeric_option_is_parsed_as_its_template_regex_reads_numbers():
    from pipeline.options import decimal, integer

    numeric = [action for action in flex_metadata.option_actions() if action.type in (int, float, integer, decimal)]
    assert numeric and all(action.type in (integer, decimal) for action in numeric), "int() or float() left"
    used = {p["regexes"][0] for p in flex_metadata.metadata()["parameters"]
            if p["name"] in {action.dest for action in numeric}}
    assert used == set(NUMERIC_KINDS)
    by_name = {p["name"]: p.get("regexes") for p in flex_metadata.metadata()["parameters"]}
    assert all(by_name[name] == [regex] for regex, (name, _) in NUMERIC_KINDS.items())


@pytest.mark.parametrize("regex", list(NUMERIC_KINDS), ids=[name for name, _ in NUMERIC_KINDS.values()])
@settings(max_examples=150)
@given(value=_SPELLINGS)
@example(value="--")  # argparse's end of the flags: the option was left an empty list, and validate() failed on it
def test_the_template_takes_a_number_exactly_when_the_job_does(regex, value):
    """The template refused '1_000', '-0' and ' 5', which int() and float() took: a launch that worked from a terminal
    failed as a template parameter, and the other way round. Now the job's parsing is the regex's spelling."""
    name, beyond_range = NUMERIC_KINDS[regex]
    template = re.fullmatch(regex, value) is not None  # the whole value, as the launcher matches a parameter
    action = next(action for action in flex_metadata.option_actions() if action.dest == name)
    try:
        parsed = action.type(value)
    except argparse.ArgumentTypeError:
        parsed = None
    assume(parsed is None or not beyond_range(parsed))
    assert template == _job_takes(name, value), f"--{name}={value!r}: template {template}"


@pytest.mark.parametrize("value", ["1_000", " 5", "-0", "inf", "٣"])
def test_a_number_the_template_refuses_is_one_line_at_launch(tmp_path, capsys, value):
    from pipeline.cli import main

    assert main(["run", f"--input={tmp_path / 'x.tsv'}", f"--output={tmp_path / 'out'}", f"--max_side={value}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "--max_side" in message and repr(value) in message
