"""The bundled demo world (pipeline/fixtures/demo_world.py): ten real photographs served on 127.0.0.1 and the rows
every real crawl meets, each row as its docstring and README's quick start say it is."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from importlib import resources

from PIL import Image

from pipeline.fixtures.demo_world import DEMO_PHOTOS, METADATA_NAME, build_demo_world, demo_image
from pipeline.fixtures.static_server import PLACEHOLDER_URL, StaticServer
from pipeline.fixtures.yfcc_rows import CC_BY_2, CC_BY_NC_2
from pipeline.records import Photo, Rejection
from pipeline.sources.yfcc import parse_line


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # the redirect itself is what is checked


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.build_opener(_NoRedirect).open(url, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers.items())


def test_the_metadata_is_seventeen_rows_of_photos_and_a_malformed_line(tmp_path):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "new" / "folder")  # made where it is not yet
        assert metadata == tmp_path / "new" / "folder" / METADATA_NAME
        text = metadata.read_text(encoding="utf-8")
        assert text.endswith("\n") and "\r" not in text
        lines = text.removesuffix("\n").split("\n")
        assert len(lines) == 18 and server.route_count == 17
        parsed = [parse_line(line.encode(), f"{METADATA_NAME}:{number}") for number, line in enumerate(lines, 1)]
        photos = [found for found in parsed if isinstance(found, Photo)]
        assert [photo.photo_id for photo in photos] == [str(number) for number in range(1001, 1018)]
        [malformed] = [found for found in parsed if isinstance(found, Rejection)]
        assert malformed.reason == "wrong_column_count" and malformed.source_ref == f"{METADATA_NAME}:18"
        # every photo is served by this server
        assert all(photo.download_url.startswith(f"http://{server.host}/") for photo in photos)


def test_the_ten_photographs_are_credited_as_their_licences_say_and_served_as_bundled(tmp_path):
    """Each of the ten is a CC BY row crediting the photographer LICENSES.md names, served byte for byte as bundled, a
    real JPEG; every bundled image is one of them."""
    licences = resources.files("pipeline.fixtures").joinpath("demo", "LICENSES.md").read_text(encoding="utf-8")
    bundled = {entry.name for entry in resources.files("pipeline.fixtures").joinpath("demo").iterdir()
               if entry.name.endswith(".jpg")}
    assert {name for _, name, *_ in DEMO_PHOTOS} == bundled and len(DEMO_PHOTOS) == 10
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        rows = {photo.photo_id: photo for line in metadata.read_text().splitlines()
                if isinstance(photo := parse_line(line.encode(), "x"), Photo)}
        for photo_id, name, title, credit, owner in DEMO_PHOTOS:
            row = rows[photo_id]
            assert (row.title, row.owner_name, row.owner_nsid) == (title, credit, owner)
            assert (row.license_source_text, row.license_source_url) == CC_BY_2 and row.marker == 0
            assert re.search(rf"^\| {re.escape(name)} \|.*\| {re.escape(credit)}[ |(]", licences, re.MULTILINE), name
            status, body, headers = _get(row.download_url)
            assert status == 200 and body == demo_image(name) and headers["Content-Type"] == "image/jpeg"
            Image.open(io.BytesIO(body)).verify()


def test_the_rows_every_crawl_meets_are_what_their_titles_say(tmp_path):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        rows = {photo.photo_id: photo for line in metadata.read_text().splitlines()
                if isinstance(photo := parse_line(line.encode(), "x"), Photo)}

        def served(photo_id: str) -> tuple[int, bytes, dict[str, str]]:
            return _get(rows[photo_id].download_url)

        # a duplicate: the cat's very bytes, re-uploaded by another account
        assert served("1011")[1] == demo_image("chelsea.jpg") and rows["1011"].owner_nsid != rows["1003"].owner_nsid
        # a broken download: the first half of a JPEG
        coffee = demo_image("coffee.jpg")
        assert served("1012")[1] == coffee[: len(coffee) // 2]
        # a photo whose licence is not CC BY
        assert (rows["1013"].license_source_text, rows["1013"].license_source_url) == CC_BY_NC_2
        # deleted since: Flickr's redirect to its placeholder image
        status, _, headers = served("1014")
        assert status == 302 and headers["Location"] == PLACEHOLDER_URL
        assert served("1015")[0] == 404
        status, body, headers = served("1016")
        assert status == 200 and body.startswith(b"<!DOCTYPE html>")  # HTML sent as an image
        assert rows["1017"].marker == 1 and served("1017")[1] == demo_image("chelsea.jpg")  # a video's row
