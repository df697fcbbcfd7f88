import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.cli import run
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.stages.blocklist import CONTENT_KINDS, METADATA_KINDS, Blocklist, Matcher, parse_blocklist
from pipeline.stages.image import ImageConfig, normalise
from tests.conftest import FAST, local_pipeline, photo, real_jpeg

LIST = """# takedowns, 2026-11
photo_id 42
url https://www.flickr.com/photos/x/43/
sha256 ABCDEF   # case does not matter
phash 00000000000000ff 2
phash ffffffffffffffff
"""


def test_parse_and_match_every_kind():
    entries = parse_blocklist(LIST, "takedowns.txt", default_distance=4)
    assert [(e.kind, e.distance, e.source) for e in entries][-2:] == [("phash", 2, "takedowns.txt:5"),
                                                                      ("phash", 4, "takedowns.txt:6")]
    everything = Matcher(entries, METADATA_KINDS + CONTENT_KINDS)
    assert everything.match(photo("42")).source == "takedowns.txt:2"
    assert everything.match(photo("43", page_url="https://www.flickr.com/photos/x/43/")).kind == "url"
    assert everything.match(photo("44", download_sha256="abcdef")).kind == "sha256"
    assert everything.match(photo("45", phash="00000000000000fc")).value == "00000000000000ff"  # distance 2
    assert everything.match(photo("46", phash="00000000000000f0")) is None  # distance 4 > 2
    assert everything.match(photo("47", phash="0fffffffffffffff")).value == "ffffffffffffffff"  # distance 4
    assert everything.match(photo("48", phash="0123456789abcdef")) is None
    metadata_only = Matcher(entries, METADATA_KINDS)
    assert metadata_only.match(photo("44", download_sha256="abcdef")) is None


@pytest.mark.parametrize("bad", ["colour 12", "photo_id", "phash xyz"])
def test_malformed_list_fails_at_start(tmp_path, bad):
    path = tmp_path / "bad.txt"
    path.write_text(bad + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        Blocklist([str(path)], 4, METADATA_KINDS)


def test_stage_rejects_with_list_and_entry(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(LIST)
    with local_pipeline() as p:
        out = p | beam.Create([photo("42"), photo("7")]) | Blocklist([str(path)], 4, METADATA_KINDS)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["7"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail)),
                    equal_to([("42", "blocklist", "blocklisted", "list.txt:2 photo_id 42")]), label="rejected")


def test_job_never_fetches_a_taken_down_photo_and_drops_listed_content(tmp_path):
    chelsea = normalise(real_jpeg("chelsea.jpg"), ImageConfig()).phash
    (tmp_path / "takedowns.txt").write_text(f"photo_id 1005\nphash {chelsea} 0\n")
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                     f"--blocklist={tmp_path / 'takedowns.txt'}", *FAST])
        assert server.hits["/1/1005_abcdef0123.jpg"] == 0
    assert stats["accounted"]
    assert stats["rejections_by_stage"]["blocklist"] == {"blocklisted": 1}
    # chelsea (1003) and its byte-identical re-upload (1011) both match the listed pHash
    assert stats["rejections_by_stage"]["blocklist_content"] == {"blocklisted": 2}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["options"]["blocklist"].endswith(".txt")
