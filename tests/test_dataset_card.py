"""README.md, the dataset card: its YAML front matter names the files of each configuration the way
Hugging Face `datasets` reads it (the loaders themselves are exercised in test_loaders.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before `datasets` is imported: never reach the Hub

from pipeline.io.dataset_card import card_text, write_card


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


FILES = {"parquet": "parquet/pass-00000-of-00001.parquet", "webdataset": "webdataset/pass-00000-of-00001.tar",
         "tfrecord": "tfrecord/pass-00000-of-00001.tfrecord",
         "rejections": "rejections/rejections-00000-of-00001.parquet",
         "near_dup_index": "near_dup_index/index-00000-of-00001.parquet"}


def small_release(folder, written: list[str]) -> None:
    """A release of one kept photo in `written` formats, one rejection and the index, with its card."""
    from pipeline.io import formats
    from pipeline.records import Rejection
    from tests.conftest import photo, real_jpeg

    kept = [photo("12", image=real_jpeg("chelsea.jpg"), width=451, height=300)]
    rejected = [Rejection("9", "detect", "human", "centerface.face 0.9 >= 0.5")]
    # Each format's writer with the records it takes (photos, rejections or index rows).
    files: dict[str, tuple[Callable[[BinaryIO, Any], None], list[Any]]] = {
        "parquet": (formats.write_parquet, kept), "webdataset": (formats.write_webdataset, kept),
        "tfrecord": (formats.write_tfrecord, kept), "rejections": (formats.write_rejections, rejected),
        "near_dup_index": (formats.write_index, [("0123456789abcdef", "12", "fedcba9876543210")])}
    for name in [*written, "rejections", "near_dup_index"]:
        write, records = files[name]
        (folder / FILES[name]).parent.mkdir()
        with (folder / FILES[name]).open("wb") as handle:
            write(handle, records)
    write_card(None, str(folder), written, True)


def test_default_config_is_the_parquet_dataset_and_the_others_are_named():
    from datasets.utils.metadata import MetadataConfigs  # ~1.3 s: only where it is used, not at collection

    configs = MetadataConfigs.from_dataset_card_data(front_matter(card_text(["webdataset", "parquet"], True)))
    assert configs == {
        "default": {"data_files": [{"split": "train", "path": "parquet/pass-*.parquet"}], "default": True},
        "rejections": {"data_files": [{"split": "train", "path": "rejections/rejections-*.parquet"}]},
        "near_dup_index": {"data_files": [{"split": "train", "path": "near_dup_index/index-*.parquet"}]},
    }
    assert configs.get_default_config_name() == "default"


def test_without_parquet_the_default_is_webdataset_alone_and_without_index_no_index_config():
    configs = front_matter(card_text(["webdataset", "tfrecord"], True))["configs"]
    assert [c["config_name"] for c in configs] == ["default"]
    assert configs[0]["data_files"][0]["path"] == "webdataset/pass-*.tar"
    with_parquet = front_matter(card_text(["parquet", "tfrecord"], False))["configs"]
    assert [c["config_name"] for c in with_parquet] == ["default", "rejections"]
    only_tfrecord = front_matter(card_text(["tfrecord"], True))["configs"]
    assert [c["config_name"] for c in only_tfrecord] == ["rejections", "near_dup_index"]


def test_a_tfrecord_release_without_an_index_never_loads_its_rejections_as_the_dataset(tmp_path):
    """A release of `--formats=tfrecord --near_dup_distance=-1` (no format `datasets` reads, no index) as a run lays
    it out: its card's one configuration, the rejections, was `datasets`' default whatever it said, so
    `load_dataset(OUTPUT, split="train")` gave the rejections as the dataset. It refuses; the rejections still load
    by their name."""
    import datasets

    from pipeline.io import formats
    from pipeline.records import Rejection
    from tests.conftest import photo, real_jpeg

    for sub in ("tfrecord", "rejections"):
        (tmp_path / sub).mkdir()
    with (tmp_path / "tfrecord" / "pass-00000-of-00001.tfrecord").open("wb") as handle:
        formats.write_tfrecord(handle, [photo("12", image=real_jpeg("chelsea.jpg"), width=451, height=300)])
    with (tmp_path / "rejections" / "rejections-00000-of-00001.parquet").open("wb") as handle:
        formats.write_rejections(handle, [Rejection("9", "detect", "human", "centerface.face 0.9 >= 0.5")])
    write_card(None, str(tmp_path), ["tfrecord"], False)
    cache = str(tmp_path / "hf-cache")
    with pytest.raises(ValueError, match="valid data file"):
        datasets.load_dataset(str(tmp_path), split="train", cache_dir=cache)
    rejections = datasets.load_dataset(str(tmp_path), "rejections", split="train", cache_dir=cache)
    assert [row["photo_id"] for row in rejections] == ["9"]


def test_card_entry_is_a_manifest_entry(tmp_path):
    entry = write_card(None, str(tmp_path), ["parquet"], True)
    data = (tmp_path / "README.md").read_bytes()
    assert entry["path"] == "README.md" and entry["format"] == "dataset_card" and entry["bytes"] == len(data)


@pytest.mark.parametrize("written", [["parquet", "webdataset"], ["webdataset", "tfrecord"]])
def test_every_configuration_a_card_names_loads(tmp_path, written):
    """`datasets` reads every configuration of a folder with the reader its first one's files take: a release without
    Parquet shards (the WebDataset default first) named the rejections and the index as configurations, which it read
    as tars ("ReadError: bad checksum"). Such a card names the dataset alone; the Parquet tables load as files."""
    import datasets

    small_release(tmp_path, written)
    cache = str(tmp_path / "hf-cache")
    names = [config["config_name"] for config in front_matter((tmp_path / "README.md").read_text())["configs"]]
    loaded = {name: datasets.load_dataset(str(tmp_path), name, split="train", cache_dir=cache) for name in names}
    assert [len(rows) for rows in loaded.values()] == [1] * len(names) and "default" in names
    for table, photo_id in (("rejections", "9"), ("near_dup_index", "12")):
        rows = datasets.load_dataset("parquet", data_files=str(tmp_path / table / "*.parquet"), split="train",
                                     cache_dir=cache)
        assert rows["photo_id"] == [photo_id] and loaded.get(table, rows)["photo_id"] == [photo_id]


@pytest.mark.parametrize("written", [["parquet", "webdataset", "tfrecord"], ["webdataset"], ["tfrecord"]])
def test_the_cards_own_code_runs_on_the_release_it_describes(tmp_path, written):
    """The card's code was the same for every release: its first line, `load_dataset(FOLDER, split="train")`, failed on
    a TFRecord-only one ("Config name is missing"), and its `load_dataset(FOLDER, "rejections")` on a WebDataset-only
    one ("BuilderConfig 'rejections' not found"), a comment below naming the way that works. It is the release's own."""
    import functools
    import re

    import datasets

    small_release(tmp_path, written)
    [code] = re.findall(r"```python\n(.*?)```", (tmp_path / "README.md").read_text(), re.S)
    assert code.startswith("from datasets import load_dataset\n")
    names: dict = {"load_dataset": functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "hf-cache"))}
    exec(code.removeprefix("from datasets import load_dataset\n").replace("path/to/this/folder", str(tmp_path)),
         names)
    assert names["rejections"]["photo_id"] == ["9"]
    if written != ["tfrecord"]:  # `datasets` reads no TFRecord: the card says so
        assert len(names["images"]) == 1
    else:
        assert "images" not in names and "TFRecord" in code


@pytest.mark.parametrize("written", [["parquet", "webdataset"], ["webdataset"], ["tfrecord"]])
def test_the_card_names_the_fields_its_images_files_hold(tmp_path, written):
    """The card's first bullet was the Parquet table's on every release: "default configuration: one row per image",
    `image` and `scores` columns, on a TFRecord-only release (no configuration; `image/encoded`, no scores) and a
    WebDataset-only one (samples of `jpg` and `json`). Every field it names is one the images' files hold."""
    import io
    import json
    import re
    import tarfile

    import pyarrow.parquet as pq

    from pipeline.io.formats import decode_example
    from pipeline.release.record_readers import tfrecords

    small_release(tmp_path, written)
    card = (tmp_path / "README.md").read_text()
    bullet = card[card.index("- **Images and metadata**"):card.index("`ATTRIBUTION.csv`")]
    named = set(re.findall(r"`([^`]+)`", bullet)) - {"datasets", "tf.train.Example", "{detector, class, score}"}
    images = {"parquet", "webdataset", "tfrecord"}.intersection(written)
    fmt = next(f for f in ("parquet", "webdataset", "tfrecord") if f in images)
    path = tmp_path / FILES[fmt]
    if fmt == "parquet":
        held = set(pq.read_schema(path).names)
    elif fmt == "webdataset":
        with tarfile.open(path) as tar:
            members = {member.name.rsplit(".", 1)[1]: tar.extractfile(member).read() for member in tar}
        held = set(members) | set(json.loads(members["json"]))
    else:
        with path.open("rb") as handle:
            held = set(decode_example(next(tfrecords(io.BytesIO(handle.read())))))
    assert f"`{fmt}/`" in bullet and ("default configuration" in bullet) == (fmt != "tfrecord")
    assert named - {f"{fmt}/"} <= held, named - {f"{fmt}/"} - held
    assert ("`scores`" in bullet) == ("scores" in held)
