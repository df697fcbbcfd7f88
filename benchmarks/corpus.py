"""The benchmarks' shared corpus: N distinct real-photo JPEGs served on 127.0.0.1, with the YFCC
metadata file that points at them (used by end_to_end.py and profile.py)."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.fixtures.yfcc_rows import yfcc_line


def distinct_photos(count: int, seed: int = 0) -> list[bytes]:
    """Real-photo crops at random offsets and sizes, re-encoded: distinct bytes and pixels."""
    rng = random.Random(seed)
    sources = [Image.open(io.BytesIO(demo_image(name))).convert("RGB") for _, name, *_ in DEMO_PHOTOS]
    out = []
    for i in range(count):
        img = sources[i % len(sources)]
        w, h = rng.randint(img.width * 3 // 5, img.width), rng.randint(img.height * 3 // 5, img.height)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        # Upscaled to 1024 px wide, the size of a Flickr 1024 px copy, so that decoding and resizing cost what
        # they cost on such copies. Wide, not on the longer side as Flickr's copies are: a taller crop (a quarter
        # of the corpus) stays taller than 1024 px. Every benchmark table in the README was measured on this
        # corpus, so it stays as it is (README, "Where the time goes": the same photos as 1024 px copies on
        # their longer side and as 640 px copies).
        crop = img.crop((x, y, x + w, y + h)).resize((1024, round(1024 * h / w)))
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


@dataclass(frozen=True)
class Served:
    host: str  # host:port, for --allowed_hosts
    urls: list[str]  # one per photo, in corpus order
    metadata: Path  # YFCC-format metadata file listing every photo


@contextmanager
def served(photos: list[bytes], scratch: str) -> Iterator[Served]:
    """Serve `photos` on 127.0.0.1 for as long as the block runs; metadata written under `scratch`."""
    with StaticServer() as server:
        lines, urls = [], []
        for i, data in enumerate(photos):
            photo_id = str(100000 + i)
            urls.append(server.add(f"/1/{photo_id}_abcdef0123.jpg", image(data)))
            lines.append(yfcc_line(i + 1, photo_id, urls[-1], owner_nsid=f"{i % 50}@N00"))
        metadata = Path(scratch) / "bench.tsv"
        metadata.write_text("\n".join(lines) + "\n")
        yield Served(server.host, urls, metadata)


def job_args(corpus: Served, output: Path | str) -> list[str]:
    """The job's arguments for the corpus: no per-host rate limit or owner cap, which would
    measure the politeness settings rather than the work."""
    return [f"--input={corpus.metadata}", f"--output={output}", f"--allowed_hosts={corpus.host}",
            "--per_host_rps=0", "--per_owner_cap=0", "--runner=FnApiRunner"]
