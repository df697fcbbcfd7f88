"""Shared fixtures: a local-only Beam runner, real photographs, and a Photo factory."""

from __future__ import annotations

import io

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from PIL import Image

from pipeline.fixtures.demo_world import demo_image
from pipeline.records import Photo

# FnApiRunner never reaches out to the internet (the default DirectRunner tries to download Prism).
LOCAL = ["--runner=FnApiRunner"]
# Whole-job runs whose test is not about detection skip the CPU-heavy detectors.
FAST = [*LOCAL, "--detectors=none"]


def local_pipeline() -> TestPipeline:
    return TestPipeline(options=PipelineOptions(LOCAL))


def photo(photo_id: str = "1", **fields) -> Photo:
    defaults = dict(source="yfcc", source_ref=f"test.tsv:{photo_id}", owner_nsid="owner@N00", owner_name="Owner",
                    license_name="Attribution License", license_url="http://creativecommons.org/licenses/by/2.0/")
    defaults.update(fields)
    return Photo(photo_id=photo_id, **defaults)


def real_jpeg(name: str = "chelsea.jpg") -> bytes:
    """A real photograph from the bundled demo set (see pipeline/fixtures/demo/LICENSES.md)."""
    return demo_image(name)


def encode(img: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def real_image(name: str = "chelsea.jpg") -> Image.Image:
    return Image.open(io.BytesIO(real_jpeg(name))).convert("RGB")
