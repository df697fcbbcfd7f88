"""Flickr API keys as a --flickr_credentials file and the environment give them (pipeline/flickr/credentials.py),
read and refused without ever showing a key. Read from Secret Manager: tests/test_sources_flickr.py and, as an
impersonated account, tests/test_cloud_storage.py; checked with Flickr at launch: tests/test_flickr_client.py."""

from __future__ import annotations

import json

import pytest

from pipeline.flickr.credentials import Credentials, CredentialsError, load_credentials


def test_credentials_from_file_or_environment(tmp_path):
    path = tmp_path / "flickr.json"
    path.write_text(json.dumps({"key": "k", "secret": "s"}))
    assert load_credentials(str(path)) == (Credentials("k", "s"),)
    assert load_credentials(None, {"FLICKR_API_KEY": "a", "FLICKR_API_SECRET": "b"}) == (Credentials("a", "b"),)
    path.write_text(json.dumps({"keys": [{"key": "k1", "secret": "s1"}, {"key": "k2", "secret": "s2"}]}))
    assert load_credentials(str(path)) == (Credentials("k1", "s1"), Credentials("k2", "s2"))
    env = {"FLICKR_API_KEY": "a, b", "FLICKR_API_SECRET": "x,y"}
    assert load_credentials(None, env) == (Credentials("a", "x"), Credentials("b", "y"))
    for broken in ({}, {"FLICKR_API_KEY": "a,b", "FLICKR_API_SECRET": "x"}, {"FLICKR_API_KEY": "a,a",
                                                                                "FLICKR_API_SECRET": "x,y"}):
        with pytest.raises(CredentialsError) as err:
            load_credentials(None, broken)
        assert "a," not in str(err.value)
    with pytest.raises(CredentialsError, match="or give --flickr_credentials a JSON file"):  # it said "pass a file"
        load_credentials(None, {})
    path.write_text(json.dumps({"keys": []}))
    with pytest.raises(CredentialsError):
        load_credentials(str(path))
    path.write_text(json.dumps({"key": " k\n", "secret": "s\r\n"}))  # pasted with its line break
    assert load_credentials(str(path)) == (Credentials("k", "s"),)
    for odd in (None, 12345, ["k"], {"k": 1}, True):  # str() made null the key "None", a number lost leading zeros
        for field in ("key", "secret"):
            path.write_text(json.dumps({"key": "k", "secret": "s"} | {field: odd}))
            with pytest.raises(CredentialsError, match='"key" and "secret" must be strings'):
                load_credentials(str(path))
    with pytest.raises(CredentialsError) as err:
        load_credentials(str(tmp_path / "missing.json"))
    assert "FileNotFoundError" in str(err.value)
    # a field given twice: Python kept the last copy, another reader of the file may show the first
    path.write_text('{"keys": [{"key": "new-key", "secret": "s", "key": "old-key"}]}')
    with pytest.raises(CredentialsError, match='the field "key" is given twice in one object') as err:
        load_credentials(str(path))
    assert "new-key" not in str(err.value) and "old-key" not in str(err.value)
    # a field named by a key itself ({key: secret}, pasted twice): the field is named only as one of ours
    path.write_text('{"0123456789abcdef0123456789abcdef": "s", "0123456789abcdef0123456789abcdef": "t"}')
    with pytest.raises(CredentialsError, match="a field is given twice in one object") as err:
        load_credentials(str(path))
    assert "0123456789abcdef" not in str(err.value)
    with pytest.raises(CredentialsError) as err:  # a key pasted as the path, a NUL byte with it: the read's ValueError
        load_credentials("0123456789abcdef0123456789abcdef\x00")
    assert "0123456789abcdef" not in str(err.value) and "not shown" in str(err.value)



@pytest.mark.parametrize("given", ["0123456789abcdef0123456789abcdef", "0123456789abcdef:fedcba9876543210"])
def test_a_key_given_to_flickr_credentials_is_never_echoed(given, tmp_path, capsys):
    """A newcomer passes the key itself to --flickr_credentials (it sounds like it takes one): the launch said
    'cannot read Flickr credentials from 0123…: FileNotFoundError', the key in stderr and so in CI and worker logs."""
    from pipeline.cli import main

    argv = ["run", "--source=flickr", "--min_upload_date=2024-01-01", "--max_upload_date=2024-01-02",
            f"--flickr_credentials={given}", f"--output={tmp_path / 'out'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "0123456789abcdef" not in err and "fedcba" not in err
    assert "never a key itself: give a key in FLICKR_API_KEY and FLICKR_API_SECRET" in err
    with pytest.raises(CredentialsError) as err:  # a path is still named, to find the typo in it
        load_credentials(str(tmp_path / "creds.jsn"))
    assert str(tmp_path / "creds.jsn") in str(err.value)
