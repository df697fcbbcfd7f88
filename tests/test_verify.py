import shutil

import pytest

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.io.formats import tfrecord_frame
from pipeline.release.verify import tfrecord_count, verify
from tests.conftest import FAST


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    directory = tmp_path_factory.mktemp("release")
    with StaticServer() as server:
        metadata = build_demo_world(server, directory / "in")
        run([f"--input={metadata}", f"--output={directory / 'out'}", f"--allowed_hosts={server.host}", "--shards=2",
             *FAST])
    return directory / "out"


def test_intact_release_verifies(release, capsys):
    assert list(verify(str(release))) == []
    assert main(["verify", str(release)]) == 0 and "OK" in capsys.readouterr().out


def test_tampered_and_missing_files_are_reported(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    shard = next((copy / "webdataset").iterdir())
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    next((copy / "tfrecord").iterdir()).unlink()
    problems = {p.path.split("/")[0]: p.message for p in verify(str(copy))}
    assert problems["webdataset"] == "sha256 differs from the manifest"
    assert problems["tfrecord"] == "missing"
    assert main(["verify", str(copy)]) == 1


def test_tfrecord_count_checks_crcs():
    data = tfrecord_frame(b"one") + tfrecord_frame(b"two")
    assert tfrecord_count(data) == 2
    broken = bytearray(data)
    broken[13] ^= 1  # a payload byte of the first record: its data CRC no longer matches
    with pytest.raises(ValueError, match="record 0"):
        tfrecord_count(bytes(broken))


def test_no_manifest(tmp_path):
    assert [p.message for p in verify(str(tmp_path))] == ["no manifest.json"]
