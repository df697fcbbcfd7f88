"""API calls that license re-verification costs: per owner (one search lists up to 500 of an owner's
CC BY photos) against per photo (one getInfo each), on a fixture world of 100,000 photos from 2,000
owners with 3% relicensed or deleted, through the real flickrapi client and the VerifyLicense stage;
and the time Flickr's real limit (3,600 calls per hour per key) would imply for PASS's 1.44M images.

    .venv/bin/python -m benchmarks.verify_license_calls [--photos 100000 --owners 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.records import Photo
from pipeline.stages.verify_license import VerifyConfig, VerifyLicense

PASS_IMAGES = 1_440_000
CALLS_PER_HOUR = 3600


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(0)
    photos = [FixturePhoto(str(10**6 + i), f"{i % args.owners}@N01", rng.choice([4, 11]), 1_200_000_000 + i)
              for i in range(args.photos)]
    world = World(photos)
    changed = rng.sample(photos, args.photos * 3 // 100)
    for photo in changed[: len(changed) // 2]:
        photo.deleted = True
    for photo in changed[len(changed) // 2:]:
        world.relicense(photo.photo_id, 2, 1_600_000_000)
    records = [Photo(photo_id=p.photo_id, owner_nsid=p.owner, license_name="Attribution License") for p in photos]
    with FlickrServer(world, api_keys={"k"}) as server, tempfile.TemporaryDirectory() as scratch:
        credentials = Path(scratch) / "flickr.json"
        credentials.write_text(json.dumps({"key": "k", "secret": "s"}))
        start = time.perf_counter()
        pipeline = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
        out = pipeline | beam.Create(records) | VerifyLicense(
            VerifyConfig(server.rest_url, str(credentials), "4,11", calls_per_second=0))
        _ = out.rejected | beam.combiners.Count.Globally() | beam.Map(print)
        pipeline.run().wait_until_finish()
        elapsed = time.perf_counter() - start
        by_owner = sum(server.calls.values()) - 1  # less the key check at construction
    per_photo = args.photos
    print(f"world: {args.photos:,} photos, {args.owners:,} owners, {len(changed):,} deleted or relicensed "
          f"(the number printed above is the rejections); {elapsed:.0f} s against the fixture")
    print(f"per owner: {by_owner:,} calls ({by_owner * 1000 / args.photos:.0f} per 1,000 verified) "
          f"= {dict(server.calls)}")
    print(f"per photo: {per_photo:,} calls (1,000 per 1,000 verified)")
    ratio = by_owner / args.photos
    print(f"PASS (1.44M images) at {CALLS_PER_HOUR:,} calls/hour/key: per photo "
          f"{PASS_IMAGES / CALLS_PER_HOUR:,.0f} hours, per owner ~{PASS_IMAGES * ratio / CALLS_PER_HOUR:,.0f} hours")


if __name__ == "__main__":
    main()
