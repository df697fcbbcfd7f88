"""Context probes: a probe file read and checked as hostile input, and its score against a brute-force oracle."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detectors.probes import MAX_PROBE_BYTES, Probe, ProbeError, parse_probe, read_probes


def probe_bytes(**fields) -> bytes:
    body = {"input": "Reshape:0", "transform": "log1p", "weights": [0.5, -1.0, 2.0], "bias": -0.25, **fields}
    return json.dumps(body).encode()


def parsed(data: bytes) -> Probe:
    return parse_probe("scene_person", "probe.json", hashlib.sha256(data).hexdigest(), data)


def oracle(weights, bias, row, transform) -> float:
    """sigmoid(bias + sum w_i * f(x_i)), one number at a time."""
    total = bias
    for w, x in zip(weights, row, strict=True):
        total += w * (math.log1p(max(x, 0.0)) if transform == "log1p" else x)
    return 1.0 / (1.0 + math.exp(-total)) if total > -500 else 0.0


def test_a_probe_file_is_read_with_its_numbers():
    probe = parsed(probe_bytes())
    assert (probe.cls, probe.input, probe.transform, probe.weights, probe.bias) == (
        "scene_person", "Reshape:0", "log1p", (0.5, -1.0, 2.0), -0.25)


def test_a_probe_file_with_another_sha256_is_refused():
    data = probe_bytes()
    with pytest.raises(ProbeError, match="sha256"):
        parse_probe("scene_person", "probe.json", "0" * 64, data)


@pytest.mark.parametrize("data, problem", [
    (b"\xff\xfe not json", "is UTF-16 text by its first bytes; save it as UTF-8"),
    (b"[1, 2]", "not a JSON object"),
    (probe_bytes(weights=[]), "weights"),
    (probe_bytes(weights=[1.0, float("nan")]), "finite"),  # json.dumps writes NaN, and json.loads reads it
    (probe_bytes(weights=[1.0, float("inf")]), "finite"),
    (probe_bytes(weights=[True, 1.0]), "finite"),  # a bool is no weight
    (probe_bytes(weights=["1.0"]), "finite"),
    (probe_bytes(weights=[1e300]), "finite"),
    (probe_bytes(weights=[0.0] * 70_000), "weights must be a list"),
    (probe_bytes(bias=None), "bias"),
    (probe_bytes(bias=float("-inf")), "bias"),
    (probe_bytes(transform="exp"), "transform"),
    (probe_bytes(input=""), "input"),
    (probe_bytes(input=["Reshape:0"]), "input"),
])
def test_a_broken_or_hostile_probe_file_is_refused_naming_what_is_wrong(data, problem):
    with pytest.raises(ProbeError, match=problem):
        parsed(data)


@pytest.mark.parametrize("data, problem", [
    # none of these was looked at: a misspelt "transfrom" read raw features (another score), the last of two "bias"
    # decided, a description of any type passed, and json read UTF-16, UTF-32 and a UTF-8 byte-order mark
    (probe_bytes(transfrom="log1p"), r"unknown key\(s\) 'transfrom'; a probe holds _comment, bias, fitted_on"),
    (probe_bytes()[:-1] + b', "bias": 3.0}', "'bias' is given twice"),
    (probe_bytes(_comment=5), "_comment must be a text or a list of texts, not int"),
    (probe_bytes(fitted_on=["tuning"]), "fitted_on must be a text, not list"),
    (probe_bytes(options="c=0.003"), "options must be an object, not str"),
    (probe_bytes().decode().encode("utf-8-sig"), "starts with a UTF-8 byte-order mark"),
    (probe_bytes().decode().encode("utf-16"), "is UTF-16 text by its first bytes; save it as UTF-8"),
    (probe_bytes().decode().encode("utf-32-le"), "is UTF-32-LE text by its first bytes; save it as UTF-8"),
])
def test_a_probe_files_unknown_key_description_or_encoding_is_refused_naming_it(data, problem):
    with pytest.raises(ProbeError, match=r"^context probe 'scene_person' \(probe\.json\): .*" + problem):
        parsed(data)


def test_every_shipped_probe_file_is_still_read():
    from pipeline.detectors.registry import BUILTIN_REGISTRY

    shipped = [path for path in sorted(BUILTIN_REGISTRY.parent.glob("*.json"))
               if "transform" in json.loads(path.read_text())]
    assert shipped
    for path in shipped:
        assert parsed(path.read_bytes()).weights
    described = probe_bytes(_comment=["a", "b"], fitted_on="tuning", options={"c": 0.003})
    assert parsed(described).bias == -0.25


def test_a_huge_probe_file_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.json"
    path.write_bytes(b" " * (MAX_PROBE_BYTES + 10))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ProbeError, match="at most"):
        read_probes({"scene_person": {"file": "huge.json", "sha256": sha}}, lambda name: str(tmp_path / name))


def test_registry_entries_name_a_readable_file_and_a_plain_class(tmp_path):
    data = probe_bytes()
    (tmp_path / "p.json").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()

    def resolve(name):
        return str(tmp_path / name)

    (probe,) = read_probes({"scene_person": {"file": "p.json", "sha256": sha.upper()}}, resolve)
    assert probe.file == str(tmp_path / "p.json") and probe.sha256 == sha
    for entries, problem in (({}, "maps each context class"), ([], "maps each context class"),
                             ({"scene person": {"file": "p.json", "sha256": sha}}, "plain name"),
                             ({"x": {"file": "p.json"}}, "needs"), ({"x": "p.json"}, "needs"),
                             ({"x": {"file": "missing.json", "sha256": sha}}, "cannot read")):
        with pytest.raises(ProbeError, match=problem):
            read_probes(entries, resolve)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 12), st.integers(1, 5), st.sampled_from(["log1p", "identity"]))
def test_scores_equal_the_formula_computed_one_number_at_a_time(data, width, rows, transform):
    numbers = st.floats(-30, 30, allow_nan=False)
    weights = data.draw(st.lists(numbers, min_size=width, max_size=width))
    bias = data.draw(numbers)
    values = np.array(data.draw(st.lists(st.lists(st.floats(-50, 50, allow_nan=False), min_size=width,
                                                  max_size=width), min_size=rows, max_size=rows)))
    probe = Probe("c", "f", "0" * 64, "t", transform, tuple(weights), bias)
    got = probe.scores(values.reshape(rows, width, 1, 1), rows)  # a [N, C, 1, 1] tensor reads as [N, C]
    expected = [oracle(weights, bias, row, transform) for row in values.tolist()]
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()


def test_a_tensor_of_another_width_is_an_error_not_a_score():
    probe = parsed(probe_bytes())
    with pytest.raises(ValueError, match="4 numbers a row, the probe 3 weights"):
        probe.scores(np.ones((2, 4), dtype=np.float32), 2)


@pytest.mark.parametrize("data, problem", [
    (probe_bytes(weights=[10 ** 400]), "finite"),  # math.isfinite would raise OverflowError on it
    (probe_bytes(bias=-(10 ** 400)), "bias"),
    (b'{"weights": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),  # json.loads: RecursionError
])
def test_numbers_too_large_for_a_float_and_deep_nesting_are_refused_not_raised(data, problem):
    with pytest.raises(ProbeError, match=problem):
        parsed(data)


def test_at_most_a_few_probes_an_entry(tmp_path):
    from pipeline.detectors.probes import MAX_PROBES

    data = probe_bytes()
    (tmp_path / "p.json").write_bytes(data)
    entry = {"file": "p.json", "sha256": hashlib.sha256(data).hexdigest()}
    many = {f"c{i}": entry for i in range(MAX_PROBES + 1)}
    with pytest.raises(ProbeError, match=f"at most {MAX_PROBES}"):
        read_probes(many, lambda name: str(tmp_path / name))


def test_a_tensor_whose_first_axis_is_not_the_batch_is_an_error():
    """[C, N] (a transpose) with as many weights as C would reshape into rows of mixed photographs: each score would
    then depend on the batch it came in. Refused unless the first axis is the batch."""
    probe = Probe("c", "f", "0" * 64, "t", "identity", (1.0, -1.0), 0.0)
    with pytest.raises(ValueError, match=r"not \[3, \.\.\.\]"):
        probe.scores(np.ones((2, 3)), 3)
    with pytest.raises(ValueError, match="the batch first"):
        probe.scores(np.ones(2), 1)
    assert probe.scores(np.ones((3, 2)), 3).shape == (3,)
