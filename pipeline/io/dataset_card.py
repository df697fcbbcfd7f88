"""README.md at the root of a release: a Hugging Face dataset card whose YAML front matter tells
`datasets.load_dataset(OUTPUT)` which files make up which configuration.

Without it, `load_dataset` on the folder globs every Parquet file under it and fails: the dataset,
its rejections and its near-duplicate index have different schemas. With it, the default
configuration is the dataset itself (its Parquet shards, else its WebDataset tars), and the
rejections and the index are configurations of their own (`load_dataset(OUTPUT, "rejections")`).

The card holds no text from the input (titles, names, options): only fixed text and the names of
the folders this job writes, so nothing hostile reaches the YAML or the Markdown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.io.files import write_atomically
from pipeline.io.layout import DATASET_CARD

CARD = DATASET_CARD
# Where each configuration's files are, as the sinks name them (FOLDER/PREFIX-SSSSS-of-NNNNN.EXT).
_DATASET_FILES = {"parquet": "parquet/pass-*.parquet", "webdataset": "webdataset/pass-*.tar"}
_REJECTION_FILES = "rejections/rejections-*.parquet"
_INDEX_FILES = "near_dup_index/index-*.parquet"
_TFRECORD_FILES = "tfrecord/pass-*.tfrecord"

_BODY = """
# PASS-style image dataset

CC-licensed photographs from Flickr without people, built by `pass-pipeline`.

{images}
  `ATTRIBUTION.csv` lists creator, title, page and license of each one, as CC BY asks of redistributors.
- **rejections**{tables}: every input record that is not in the dataset, with its stage and reason.
- **near_dup_index**{tables} (when written): pHash, photo id and dHash of every image, for the next release.

```python
from datasets import load_dataset
{code}
```

`manifest.json` lists every file with its size and SHA-256; `stats.json` holds the funnel.
"""
# The card's code, by what the release holds (its front matter's configurations): each line runs on it.
_IMAGES = 'images = load_dataset("path/to/this/folder", split="train")'
_REJECTIONS = 'rejections = load_dataset("path/to/this/folder", "rejections", split="train")'
_CODE = {
    "parquet": [_IMAGES, _REJECTIONS],
    "webdataset": [_IMAGES, "# the rejections and the index as the Parquet files they are:",
                   'rejections = load_dataset("parquet", data_files="path/to/this/folder/rejections/*.parquet", '
                   'split="train")'],
    "tfrecord": ["# the images are TFRecord shards (tfrecord/, one tf.train.Example each), which `datasets` does not",
                 "# read: tf.data.TFRecordDataset reads them. The rejections and the index load here:", _REJECTIONS],
}


# What the first bullet says the images are, by the dataset's format (the one `_CODE` picks): the Parquet wording ("one
# row per image", "default configuration") was on every card, WebDataset-only and TFRecord-only releases' too.
_LICENSES = ("\n  Every image keeps its own license (`license_name`, `license_url`: one canonical name and https"
             "\n  URL per license, e.g. \"CC BY 2.0\"; the source's own wording in `license_source_text`,"
             "\n  `license_source_url`);")
_IMAGES_BULLET = {
    "parquet": "- **Images and metadata** (default configuration, `parquet/`): one row per image. `image` decodes"
               "\n  to a PIL image in Hugging Face `datasets`; `scores` lists every detector score as"
               "\n  `{detector, class, score}`." + _LICENSES,
    "webdataset": "- **Images and metadata** (default configuration, `webdataset/`): one sample per image, its key"
                  "\n  the photo id: `jpg` the image (a PIL image in `datasets`), `json` its metadata, where `scores`"
                  "\n  lists every detector score as `{detector, class, score}`." + _LICENSES,
    "tfrecord": "- **Images and metadata** (`tfrecord/`, no configuration): one `tf.train.Example` per image:"
                "\n  `image/encoded` (the JPEG), `image/id`, `image/width`, `image/height`, `image/sha256`,"
                "\n  `image/phash`, `license`, `license_url` (one canonical name and https URL per license, e.g."
                "\n  \"CC BY 2.0\"), the source's own wording in `license_source_text`, `license_source_url`, and"
                "\n  `creator`, `creator_nsid`, `title`, `page_url`;",
}
# The Parquet tables beside a WebDataset default are no configurations of the card (it stands alone).
_TABLES = {"webdataset": " (Parquet files, no configuration)"}


def _config(name: str, path: str) -> list[str]:
    return [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {path}"]


def front_matter(formats_written: Iterable[str], with_index: bool, earlier: bool = False) -> str:
    """The card's YAML front matter (between its `---` lines, them included) for a release holding `formats_written`,
    and the near-duplicate index if `with_index`. The default configuration is the Parquet dataset, or the WebDataset
    one when there is no Parquet, and then alone: `datasets` reads every configuration of a folder with the reader the
    first one's files take, and read the rejections and the index as tars ("ReadError: bad checksum"). A TFRecord-only
    release has none (`datasets` has no TFRecord reader), except that a card of one configuration makes it `datasets`'
    default whatever it says: without the index, the rejections alone were loaded as the dataset. There the default
    names the TFRecord shards, which `load_dataset(OUTPUT)` refuses ("At least one valid data file must be
    specified"); it is listed after the rejections, which the Parquet reader their files take then still reads.

    `earlier`: the front matter earlier versions wrote for these files (the WebDataset default followed by the
    rejections and the index; the rejections alone for TFRecord without the index)."""
    written = set(formats_written)
    lines = ["---", "license: other", "pretty_name: PASS-style image dataset", "configs:"]
    dataset = next((path for fmt, path in _DATASET_FILES.items() if fmt in written), None)
    if dataset:
        lines += [*_config("default", dataset), "  default: true"]
    if dataset != _DATASET_FILES["webdataset"] or earlier:  # a WebDataset default stands alone
        lines += _config("rejections", _REJECTION_FILES)
        if with_index:
            lines += _config("near_dup_index", _INDEX_FILES)
        elif not dataset and not earlier:
            lines += [*_config("default", _TFRECORD_FILES), "  default: true"]
    return "\n".join([*lines, "---"]) + "\n"


def front_matters(formats_written: Iterable[str], with_index: bool) -> list[str]:
    """Each front matter a run writes for these files, this version's first, then an earlier version's where it
    differs: a release written by an earlier version still verifies, and a refresh, which verifies it first, still
    takes it."""
    written = set(formats_written)
    return list(dict.fromkeys(front_matter(written, with_index, earlier) for earlier in (False, True)))


def card_text(formats_written: Iterable[str], with_index: bool) -> str:
    """The card for a release holding `formats_written`, and the near-duplicate index if `with_index`: its front matter
    (`front_matter`), then fixed text."""
    written = set(formats_written)
    dataset = next((fmt for fmt in _CODE if fmt in written), "tfrecord")
    body = _BODY.replace("{images}", _IMAGES_BULLET[dataset]).replace("{tables}", _TABLES.get(dataset, ""))
    return front_matter(written, with_index) + body.replace("{code}", "\n".join(_CODE[dataset]))


def write_card(_: Any, output: str, formats_written: list[str], with_index: bool) -> dict[str, Any]:
    payload = card_text(formats_written, with_index).encode("utf-8")
    entry = write_atomically(FileSystems.join(output, CARD), lambda handle: handle.write(payload))
    return {"path": CARD, "format": "dataset_card", **entry}


class WriteDatasetCard(beam.PTransform):
    """PBegin -> PCollection[dict]: the single manifest entry of README.md (like ATTRIBUTION.csv's)."""

    def __init__(self, output: str, formats_written: list[str], with_index: bool) -> None:
        super().__init__()
        self._output, self._formats, self._with_index = output, list(formats_written), with_index

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Once" >> beam.Create([None])
                | "Write" >> beam.Map(write_card, output=self._output, formats_written=self._formats,
                                      with_index=self._with_index))
