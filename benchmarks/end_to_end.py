"""Images per second for the whole job on the local runner (1 and 2 worker processes) against a
plain sequential loop (requests + Pillow + imagehash) over the same URLs, in the same process.

    .venv/bin/python -m benchmarks.end_to_end [--images 400]

Prints ratios against the baseline measured in this run: these machines are shared and noisy,
so absolute numbers from different runs are not comparable.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import tempfile
import time
from pathlib import Path

import imagehash
import requests
from PIL import Image

from pipeline.cli import run
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
        # Upscale like a Flickr 1024 px copy, so decoding and resizing cost what they cost in production.
        crop = img.crop((x, y, x + w, y + h)).resize((1024, round(1024 * h / w)))
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


def sequential_baseline(urls: list[str]) -> float:
    session = requests.Session()
    start = time.perf_counter()
    for url in urls:
        raw = session.get(url, timeout=30).content
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        img.thumbnail((512, 512), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        hashlib.sha256(buffer.getvalue()).hexdigest()
        str(imagehash.phash(img))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()
    photos = distinct_photos(args.images)
    with StaticServer() as server, tempfile.TemporaryDirectory() as scratch:
        lines, urls = [], []
        for i, data in enumerate(photos):
            photo_id = str(100000 + i)
            urls.append(server.add(f"/1/{photo_id}_abcdef0123.jpg", image(data)))
            lines.append(yfcc_line(i + 1, photo_id, urls[-1], owner_nsid=f"{i % 50}@N00"))
        metadata = Path(scratch) / "bench.tsv"
        metadata.write_text("\n".join(lines) + "\n")
        baseline = sequential_baseline(urls)
        print(f"images: {len(photos)}, mean size {sum(map(len, photos)) // len(photos) // 1024} KiB")
        print(f"{'sequential loop (baseline)':40s} {len(photos) / baseline:7.1f} img/s   1.00x")
        for label, extra in [("pipeline, FnApiRunner, 1 worker", []),
                             ("pipeline, FnApiRunner, 2 workers", ["--direct_num_workers=2",
                                                                    "--direct_running_mode=multi_processing"])]:
            output = Path(scratch) / label.replace(" ", "_").replace(",", "")
            start = time.perf_counter()
            stats = run([f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}",
                         "--per_host_rps=0", "--per_owner_cap=0", "--runner=FnApiRunner", *extra])
            elapsed = time.perf_counter() - start
            assert stats["accounted"], stats
            print(f"{label:40s} {len(photos) / elapsed:7.1f} img/s   {baseline / elapsed:4.2f}x"
                  f"   (kept {stats['kept']}, all 3 formats written)")


if __name__ == "__main__":
    main()
