"""JSON objects read with each key once (pipeline/io/json_keys.py): a key given twice is refused, never resolved."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.json_keys import KeyTwice, each_key_once


def loads(text: str) -> object:
    return json.loads(text, object_pairs_hook=each_key_once)


def test_an_object_with_each_key_once_reads_as_json_loads_reads_it():
    text = '{"a": 1, "b": [{"c": null}, {"c": 2}], "d": {"e": {"f": "g"}}, "": 0}'
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    '{"license": "0", "license": "4"}',
    '{"a": 1, "b": 2, "a": 1}',  # the same value twice is refused too: another reader may not say so
    '{"a": 1, "\\u0061": 2}',  # two spellings of one key
    '{"outer": [{"x": {"k": 1, "k": 2}}]}',  # however deep
    '[{"ok": 1}, {"ok": 2, "ok": 3}]',
])
def test_a_key_given_twice_in_one_object_is_refused(text):
    with pytest.raises(KeyTwice):
        loads(text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "A": 2}',
    '{"\\u00e9": 1, "e\\u0301": 2}',  # NFC and NFD: two keys to JSON, and to every reader
    '{"k": {"k": {"k": 1}}}',  # one key in each of nested objects
    '[{"k": 1}, {"k": 2}]',
    '{"a\\u0000": 1, "a": 2}',
])
def test_the_same_key_in_different_objects_or_spelt_otherwise_is_no_repeat(text):
    assert loads(text) == json.loads(text)


def test_the_refusal_names_the_key_as_json_text_of_at_most_200_characters():
    with pytest.raises(KeyTwice) as err:
        loads('{"x\\n\\u202e": 1, "x\\n\\u202e": 2}')
    assert str(err.value) == '"x\\n\\u202e"'
    long_key = "k" * 1_000_000
    with pytest.raises(KeyTwice) as err:
        loads(json.dumps({long_key: 1})[:-1] + f', "{long_key}": 2}}')
    assert str(err.value) == '"' + "k" * 199
    assert isinstance(err.value, ValueError)  # callers that catch a ValueError for a bad answer catch it


def test_an_object_of_many_keys_is_read_whole():
    pairs = [(str(n), n) for n in range(100_000)]
    assert each_key_once(pairs) == dict(pairs)
    with pytest.raises(KeyTwice, match='"99999"'):
        each_key_once([*pairs, ("99999", 0)])


def test_nan_and_infinity_pass_as_json_loads_reads_them():
    """Not this hook's business (a reader refuses them where it must): read as json.loads reads them."""
    found = loads('{"a": NaN, "b": -Infinity}')
    assert isinstance(found, dict) and math.isnan(found["a"]) and found["b"] == -math.inf


KEYS = st.sampled_from(["a", "b", "A", "\u00e9", "e\u0301", "", "\u200b", "\x00"]) | st.text(max_size=3)


@given(st.lists(st.tuples(KEYS, st.integers() | st.none() | st.text(max_size=3)), max_size=8))
def test_pairs_read_as_a_dict_when_each_key_is_there_once_else_refused(pairs):
    keys = [key for key, _ in pairs]
    repeated = next((key for index, key in enumerate(keys) if key in keys[:index]), None)
    if repeated is None:
        assert each_key_once(pairs) == dict(pairs)
    else:
        with pytest.raises(KeyTwice) as err:
            each_key_once(pairs)
        assert str(err.value) == json.dumps(repeated)[:200]  # the first key seen again


@given(st.lists(st.tuples(KEYS, st.integers()), max_size=6))
def test_json_text_is_refused_exactly_when_an_object_in_it_repeats_a_key(pairs):
    text = "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in pairs) + "}"
    nested = f'{{"outer": [{text}]}}'
    if len({key for key, _ in pairs}) == len(pairs):
        assert loads(nested) == json.loads(nested)
    else:
        with pytest.raises(KeyTwice):
            loads(nested)
