"""benchmarks/corpus.py: the corpus every benchmark measures on is N distinct 1024 px wide JPEGs, the same for the
same seed, served on 127.0.0.1 with a YFCC metadata file naming each of them once."""

from __future__ import annotations

import hashlib
import io

import requests
from PIL import Image

from benchmarks.corpus import distinct_photos, job_args, served


def test_the_photos_are_distinct_1024_px_wide_jpegs_and_repeatable():
    photos = distinct_photos(12)  # more than the 10 demo photographs: the sources repeat, the crops do not
    assert len({hashlib.sha256(raw).hexdigest() for raw in photos}) == 12
    pixels = set()
    for raw in photos:
        img = Image.open(io.BytesIO(raw))
        assert img.format == "JPEG" and img.width == 1024 and img.height > 0
        pixels.add(hashlib.sha256(img.convert("RGB").tobytes()).hexdigest())
    assert len(pixels) == 12
    assert distinct_photos(3) == photos[:3]
    assert distinct_photos(3, seed=1) != photos[:3]


def test_the_served_corpus_answers_every_url_and_its_metadata_names_each_photo_once(tmp_path):
    photos = distinct_photos(3)
    with served(photos, str(tmp_path)) as corpus:
        assert len(corpus.urls) == len(set(corpus.urls)) == 3
        assert all(url.startswith(f"http://{corpus.host}/") for url in corpus.urls)
        assert [requests.get(url, timeout=10).content for url in corpus.urls] == photos
        lines = corpus.metadata.read_text().splitlines()
        assert len(lines) == 3
        assert all(sum(url in line for line in lines) == 1 for url in corpus.urls)
        args = job_args(corpus, tmp_path / "out")
    assert f"--input={corpus.metadata}" in args and f"--output={tmp_path / 'out'}" in args
    assert f"--allowed_hosts={corpus.host}" in args and "--per_host_rps=0" in args and "--per_owner_cap=0" in args
