"""Compatibility check outside the default test suite: a release read by PyTorch's DataLoader with
two worker processes and by tf.data, the two trainers' loaders too heavy for the project's test venv
(tests/test_loaders.py covers Hugging Face `datasets`, pandas, DuckDB and `webdataset` in the suite).

Its own venv, then any release (the demo's is quickest to make):

    python3.11 -m venv .venv-compat
    .venv-compat/bin/pip install "torch==2.13.0+cpu" "tensorflow-cpu==2.21.0" "datasets==5.2.0" \\
        "webdataset==1.0.2" pillow
    .venv/bin/pass-pipeline demo --output /tmp/pass-demo
    .venv-compat/bin/python benchmarks/compat_loaders.py /tmp/pass-demo

(torch's "+cpu" build comes from the PyTorch wheel index, or a local wheel folder; plain
`torch==2.13.0` from PyPI works too but pulls the CUDA libraries.) The script imports nothing from
the project: it reads the release as a stranger would. Each check compares the photo ids and image
sizes it loaded with the Parquet shards' own; it prints one line per check and exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Callable
from typing import NoReturn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the Hub
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIDE = 64  # images are resized to one size so that the DataLoader can stack a batch


def expected(release: str) -> dict[str, tuple[int, int]]:
    """{photo id: (width, height)} from the release's Parquet shards."""
    import pyarrow.parquet as pq

    table = pq.read_table(os.path.join(release, "parquet"), columns=["photo_id", "width", "height"])
    return {row["photo_id"]: (row["width"], row["height"]) for row in table.to_pylist()}


def torch_hf_parquet(release: str) -> dict[str, tuple[int, int]]:
    """`load_dataset(release)` (the dataset card's default configuration) in a DataLoader, 2 workers."""
    import numpy as np
    import torch
    from datasets import load_dataset
    from torch.utils.data import DataLoader

    dataset = load_dataset(release, split="train")

    def to_tensors(batch: dict) -> dict:
        sizes = [image.size for image in batch["image"]]
        images = [torch.from_numpy(np.array(image.convert("RGB").resize((SIDE, SIDE)))).permute(2, 0, 1)
                  for image in batch["image"]]
        return {"photo_id": batch["photo_id"], "image": images, "size": [torch.tensor(size) for size in sizes]}

    dataset.set_transform(to_tensors, columns=["photo_id", "image"])
    seen = {}
    for batch in DataLoader(dataset, batch_size=4, num_workers=2):
        assert batch["image"].shape[1:] == (3, SIDE, SIDE), batch["image"].shape
        for photo_id, size in zip(batch["photo_id"], batch["size"].tolist(), strict=True):
            seen[photo_id] = tuple(size)
    return seen


def torch_webdataset(release: str) -> dict[str, tuple[int, int]]:
    """The WebDataset tars through `webdataset` in a DataLoader, shards split over 2 workers."""
    import webdataset as wds
    from torch.utils.data import DataLoader

    shards = sorted(glob.glob(os.path.join(release, "webdataset", "*.tar")))
    pipeline = (wds.WebDataset(shards, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False)
                .decode("pil").to_tuple("__key__", "jpg", "json"))
    seen = {}
    for key, image, metadata in DataLoader(pipeline, batch_size=None, num_workers=2):
        assert metadata["photo_id"] == key, (metadata["photo_id"], key)
        seen[key] = image.size
    return seen


def tf_data_tfrecord(release: str) -> dict[str, tuple[int, int]]:
    """The TFRecord shards through tf.data: parse the Example, decode the JPEG, check its shape."""
    import tensorflow as tf

    features = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/id": tf.io.FixedLenFeature([], tf.string),
                "image/height": tf.io.FixedLenFeature([], tf.int64),
                "image/width": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record: tf.Tensor) -> tuple:
        example = tf.io.parse_single_example(record, features)
        image = tf.io.decode_jpeg(example["image/encoded"], channels=3)
        return example["image/id"], tf.shape(image), example["image/width"], example["image/height"]

    files = sorted(glob.glob(os.path.join(release, "tfrecord", "*.tfrecord")))
    dataset = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=2).prefetch(2)
    seen = {}
    for photo_id, shape, width, height in dataset.as_numpy_iterator():
        assert tuple(shape) == (height, width, 3), (photo_id, shape, width, height)
        seen[photo_id.decode("utf-8")] = (int(width), int(height))
    return seen


CHECKS: dict[str, Callable[[str], dict[str, tuple[int, int]]]] = {
    "torch DataLoader (2 workers) over load_dataset(release)": torch_hf_parquet,
    "torch DataLoader (2 workers) over webdataset tars": torch_webdataset,
    "tf.data over the TFRecord shards": tf_data_tfrecord,
}


class OneLineParser(argparse.ArgumentParser):
    """A command line read wrong is one line, `compat_loaders: error: MESSAGE (see `PROG --help`)`, exit 2, as the
    project's other commands say theirs (pipeline/usage.py, which this script cannot import: it runs without the
    project), not argparse's usage and then its error. Each unprintable character is written as Python writes it in a
    string: argparse quotes an unknown argument as typed, whose escapes reached the terminal and whose line break
    printed a forged line of its own. `--help` is argparse's own."""

    def error(self, message: str) -> NoReturn:
        shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in message)
        print(f"compat_loaders: error: {shown} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python benchmarks/compat_loaders.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("release", help="a release folder written by pass-pipeline (all three formats)")
    release = os.path.abspath(parser.parse_args(argv).release)
    shards = os.path.join(release, "parquet")
    # A path typed wrong ended in pyarrow's FileNotFoundError traceback.
    if not os.path.isdir(shards) or not any(name.endswith(".parquet") for name in os.listdir(shards)):
        parser.error(f"{release} holds no release's Parquet shards (parquet/*.parquet): give a release folder")
    want = expected(release)
    failed = 0
    for name, check in CHECKS.items():
        try:
            got = check(release)
            problem = "" if got == want else f"loaded {len(got)} images, the Parquet has {len(want)} (or sizes differ)"
        except Exception as err:  # report every loader, not only the first that fails
            problem = f"{type(err).__name__}: {err}"
        print(f"{'FAIL' if problem else 'ok  '} {name}: {problem or f'{len(want)} images'}")
        failed += bool(problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
