"""The bundled demo world: ten real photographs served by a Flickr-like server on 127.0.0.1,
plus the rows every real crawl meets (a duplicate, a broken file, a non-CC-BY row, a deleted
photo, a 404, HTML instead of an image, a video, a malformed line)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from pipeline.fixtures.static_server import PLACEHOLDER_URL, StaticServer, image, redirect, status
from pipeline.fixtures.yfcc_rows import CC_BY_NC_2, yfcc_line

# photo id, file, title, credit, owner NSID (see fixtures/demo/LICENSES.md)
DEMO_PHOTOS = (
    ("1001", "astronaut.jpg", "Astronaut Eileen Collins", "NASA", "10000001@N01"),
    ("1002", "camera.jpg", "Cameraman", "Lav Varshney", "10000002@N01"),
    ("1003", "chelsea.jpg", "Chelsea the cat", "Stefan van der Walt", "10000003@N01"),
    ("1004", "coffee.jpg", "Coffee cup", "Rachel Michetti", "10000004@N01"),
    ("1005", "rocket.jpg", "DSCOVR launch", "SpaceX", "10000005@N01"),
    ("1006", "hubble_deep_field.jpg", "Hubble eXtreme Deep Field", "NASA", "10000001@N01"),
    ("1007", "brick.jpg", "Brick wall", "CC0Textures", "10000006@N01"),
    ("1008", "grass.jpg", "Grass", "linolafett", "10000007@N01"),
    ("1009", "gravel.jpg", "Gravel", "CC0Textures", "10000006@N01"),
    ("1010", "coins.jpg", "Greek coins from Pompeii", "Brooklyn Museum", "10000008@N01"),
)


def demo_image(name: str) -> bytes:
    return resources.files("pipeline.fixtures").joinpath("demo", name).read_bytes()


def photo_path(photo_id: str) -> str:
    return f"/1/{photo_id}_abcdef0123.jpg"


def build_demo_world(server: StaticServer, directory: str | os.PathLike) -> Path:
    """Registers the demo's responses on `server` and writes its YFCC-format metadata file."""
    lines = []

    def row(photo_id: str, *responses: object, **fields: object) -> None:
        url = server.add(photo_path(photo_id), *responses)
        lines.append(yfcc_line(len(lines) + 1, photo_id, url, **fields))

    for photo_id, name, title, credit, owner in DEMO_PHOTOS:
        row(photo_id, image(demo_image(name)), title=title, owner_name=credit, owner_nsid=owner)
    chelsea, coffee = demo_image("chelsea.jpg"), demo_image("coffee.jpg")
    row("1011", image(chelsea), title="Cat (re-upload)", owner_name="someone else", owner_nsid="10000009@N01")
    row("1012", image(coffee[: len(coffee) // 2]), title="Broken download")
    row("1013", image(demo_image("rocket.jpg")), title="Non-commercial only", license=CC_BY_NC_2)
    row("1014", redirect(PLACEHOLDER_URL), title="Deleted since 2014")
    row("1015", status(404), title="Gone missing")
    row("1016", image(b"<!DOCTYPE html><html><body>Service unavailable</body></html>"), title="HTML not JPEG")
    row("1017", image(chelsea), title="A video", marker=1)
    lines.append("1018\t1018\tbroken row with too few columns")
    path = Path(directory) / "yfcc-demo.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
