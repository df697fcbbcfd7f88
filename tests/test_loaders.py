"""The outputs load untouched in the tools trainers use: Hugging Face `datasets` (by data files and
by the release folder, through its dataset card), pandas/pyarrow, DuckDB, the `webdataset`
library and, for the TFRecord shards, the `tfrecord` package as README.md shows it. One small whole
job (detectors off) gives a real release; photos with scores are written with the formats module
directly, since a job with detectors is slow."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before `datasets` is imported: never reach the Hub

import pyarrow.parquet as pq
from PIL import Image

from pipeline.io import formats
from pipeline.io.dataset_card import card_text
from pipeline.records import Rejection
from tests.conftest import photo, real_jpeg

if TYPE_CHECKING:
    import datasets

# The loaders themselves (`datasets` alone takes ~1.3 s with pandas) are imported inside the tests that use
# them: every test process imports every test module when it collects, and most never run these.

SCORED = [
    photo("12", image=real_jpeg("chelsea.jpg"), width=451, height=300, title="Chat — été",
          scores=(("centerface.face", 0.125), ("open_nsfw.nsfw", 0.015625), ("open_nsfw.sfw", 0.984375))),
    photo("345", image=real_jpeg("coffee.jpg"), width=512, height=341, title="Coffee",
          scores=(("centerface.face", 0.0),)),
]


@pytest.fixture()
def job_release(demo_release) -> Path:
    """A release written by the job: the session's demo release (detectors off, all three formats)."""
    return demo_release


@pytest.fixture(scope="module")
def scored_release(tmp_path_factory) -> Path:
    """A release folder laid out as the job lays it out, with photos that have detector scores."""
    folder = tmp_path_factory.mktemp("scored")
    for sub in ("parquet", "webdataset", "rejections"):
        (folder / sub).mkdir()
    with (folder / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        formats.write_parquet(handle, SCORED)
    with (folder / "webdataset" / "pass-00000-of-00001.tar").open("wb") as handle:
        formats.write_webdataset(handle, SCORED)
    with (folder / "rejections" / "rejections-00000-of-00001.parquet").open("wb") as handle:
        formats.write_rejections(handle, [Rejection("9", "detect", "human", "centerface.face 0.9 >= 0.5")])
    (folder / "README.md").write_text(card_text(["parquet", "webdataset"], False))
    return folder


def kept_ids(release: Path) -> list[str]:
    return sorted(pq.read_table(release / "parquet", columns=["photo_id"]).column(0).to_pylist())


def _hf(*args, tmp_path, **kwargs) -> datasets.Dataset:
    import datasets

    return datasets.load_dataset(*args, split="train", cache_dir=str(tmp_path / "hf-cache"), **kwargs)


def test_hf_datasets_loads_parquet_files_with_images_and_scores(scored_release, tmp_path):
    import datasets

    ds = _hf("parquet", data_files=str(scored_release / "parquet" / "*.parquet"), tmp_path=tmp_path)
    assert isinstance(ds.features["image"], datasets.Image)
    rows = sorted(ds, key=lambda row: row["photo_id"])
    assert [row["photo_id"] for row in rows] == ["12", "345"]
    assert isinstance(rows[0]["image"], Image.Image) and rows[0]["image"].size == (451, 300)
    assert rows[0]["title"] == "Chat — été"
    assert {(s["detector"], s["class"]): s["score"] for s in rows[0]["scores"]} == {
        ("centerface", "face"): 0.125, ("open_nsfw", "nsfw"): 0.015625, ("open_nsfw", "sfw"): 0.984375}


def test_hf_datasets_loads_the_release_folder_through_its_card(scored_release, tmp_path):
    ds = _hf(str(scored_release), tmp_path=tmp_path)
    assert sorted(ds["photo_id"]) == ["12", "345"]
    assert isinstance(ds[0]["image"], Image.Image)
    rejections = _hf(str(scored_release), "rejections", tmp_path=tmp_path)
    assert rejections[0]["reason"] == "human"


def test_hf_datasets_loads_a_job_release_folder(job_release, tmp_path):
    manifest = json.loads((job_release / "manifest.json").read_text())
    assert {"path": "README.md", "format": "dataset_card"}.items() <= next(
        f for f in manifest["files"] if f["path"] == "README.md").items()
    ds = _hf(str(job_release), tmp_path=tmp_path)
    assert sorted(ds["photo_id"]) == kept_ids(job_release)
    first = ds[0]
    assert isinstance(first["image"], Image.Image) and first["image"].size == (first["width"], first["height"])
    rejections = _hf(str(job_release), "rejections", tmp_path=tmp_path)
    assert rejections.num_rows == manifest["totals"]["rejected"]
    index = _hf(str(job_release), "near_dup_index", tmp_path=tmp_path)
    assert sorted(index["photo_id"]) == kept_ids(job_release)


def test_the_job_release_with_its_card_still_verifies(job_release):
    from pipeline.release.verify import verify

    assert list(verify(str(job_release))) == []


def test_pandas_reads_the_dataset(job_release, scored_release):
    import pandas as pd

    frame = pd.read_parquet(job_release / "parquet")
    assert sorted(frame["photo_id"]) == kept_ids(job_release)
    assert all(image["bytes"][:2] == b"\xff\xd8" for image in frame["image"])
    scored = pd.read_parquet(scored_release / "parquet").set_index("photo_id")
    assert [entry["score"] for entry in scored.loc["12", "scores"]] == [0.125, 0.015625, 0.984375]


def test_duckdb_selects_over_the_shards(job_release, scored_release):
    import duckdb

    glob = str(job_release / "parquet" / "*.parquet")
    ids = duckdb.sql(f"SELECT photo_id FROM read_parquet('{glob}') ORDER BY photo_id").fetchall()
    assert sorted(row[0] for row in ids) == kept_ids(job_release)
    glob = str(scored_release / "parquet" / "*.parquet")
    rows = duckdb.sql(
        "SELECT photo_id, s.detector, s.class, s.score, octet_length(image.bytes) "
        f"FROM (SELECT photo_id, image, unnest(scores) AS s FROM read_parquet('{glob}')) "
        "WHERE s.score > 0.1 ORDER BY s.score").fetchall()
    assert rows == [("12", "centerface", "face", 0.125, len(SCORED[0].image)),
                    ("12", "open_nsfw", "sfw", 0.984375, len(SCORED[0].image))]


def test_webdataset_library_iterates_the_shards(job_release, scored_release):
    import webdataset as wds

    shards = sorted(str(path) for path in (job_release / "webdataset").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil"))
    assert sorted(sample["__key__"] for sample in samples) == kept_ids(job_release)
    assert all(isinstance(s["jpg"], Image.Image) and s["json"]["photo_id"] == s["__key__"] for s in samples)
    scored = list(wds.WebDataset(str(scored_release / "webdataset" / "pass-00000-of-00001.tar"),
                                 shardshuffle=False).decode("pil"))
    assert scored[0]["jpg"].size == (451, 300)
    assert scored[0]["json"]["scores"][0] == {"detector": "centerface", "class": "face", "score": 0.125}


def _readme_snippet(needle: str) -> str:
    """The README's one Python block holding `needle`, as a reader copies it."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = [textwrap.dedent(block) for block in re.findall(r"^ *```python\n(.*?)^ *```$", text, re.M | re.S)]
    found = [block for block in blocks if needle in block]
    assert len(found) == 1, f"README.md holds {len(found)} Python blocks with {needle!r}"
    return found[0]


def test_the_readmes_tfrecord_snippet_reads_the_release_without_tensorflow(job_release, tmp_path):
    """The README read the TFRecord shards back only with TensorFlow; its snippet with the `tfrecord` package, run as
    written where the quick start leaves its release (`demo-output`), TensorFlow unimportable."""
    snippet = _readme_snippet("tfrecord_loader")
    (tmp_path / "demo-output").symlink_to(job_release, target_is_directory=True)
    no_tensorflow = "import sys; sys.modules['tensorflow'] = None\n"  # an import of it raises ImportError
    done = subprocess.run([sys.executable, "-c", no_tensorflow + snippet], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = {row["photo_id"]: (row["width"], row["height"])
             for row in pq.read_table(job_release / "parquet", columns=["photo_id", "width", "height"]).to_pylist()}
    with (job_release / "ATTRIBUTION.csv").open(newline="", encoding="utf-8") as handle:
        credits = list(csv.DictReader(handle))
    expected = [f"{row['photo_id']} {sizes[row['photo_id']]} {row['creator']} {row['license_name']}" for row in credits]
    assert len(expected) == len(kept_ids(job_release)) > 0
    assert sorted(done.stdout.splitlines()) == sorted(expected)
