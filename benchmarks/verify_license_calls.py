"""API calls that license re-verification costs, per carried photo, for owners carrying 1, 1.2, 3, 10
and 50 photos on average, by three strategies through the real flickrapi client and the stage's
DoFn against the fixture world (3% of the carried photos deleted or relicensed, each owner with a
few CC BY photos the dataset does not carry):

  per photo    one getInfo per photo;
  owner first  what the stage did before: for every owner a count, the pages of the owner's whole
               CC BY list, then getInfo for the photos missing from it;
  adaptive     the stage now: per owner the cheaper of the two (see stages/verify_license.py).

It fails loudly (exit status 1) when the adaptive strategy breaks its invariants: never more calls
than carried photos, and with many photos per owner never more than one call per owner plus one
per missing photo; or when the strategies disagree on any photo's outcome. The last line is the
time Flickr's real limit (3,600 calls per hour per key) would imply for PASS's 1.44M images.

    .venv/bin/python -m benchmarks.verify_license_calls [--photos 1000]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import arguments
from pipeline.fixtures.flickr_server import FlickrServer, carried_world, verify_per_owner
from pipeline.flickr.client import PER_PAGE, split_windows
from pipeline.records import Photo
from pipeline.stages.verify_license import VerifyConfig, _VerifyOwner
from pipeline.usage import OneLineParser, usage_said

PASS_IMAGES = 1_440_000
CALLS_PER_HOUR = 3600
REGIMES = (1.0, 1.2, 3.0, 10.0, 50.0)
MANY = 3.0  # from this many photos per owner on, one call per owner plus one per missing photo at most


class _PerPhoto(_VerifyOwner):
    def _listed(self, owner: str, photos: list[Photo]) -> dict[str, int | None]:
        return {}


class _OwnerFirst(_VerifyOwner):
    """The stage before the adaptive choice, call for call: every owner searched."""

    min_photos_for_search = 1

    def _listed(self, owner: str, photos: list[Photo]) -> dict[str, int | None]:
        def search(low: int, high: int, **params: object) -> dict:
            return self._client.call("flickr.photos.search", user_id=owner, license=self._cfg.licenses,
                                     min_upload_date=low, max_upload_date=high, extras="license", **params)["photos"]

        found: dict[str, int | None] = {}
        count = lambda lo, hi: int(search(lo, hi, per_page=1)["total"])  # noqa: E731
        for low, high, total in split_windows(count, 0, 2**31, depth=self._cfg.search_depth):
            for page in range(1, -(-total // PER_PAGE) + 1):
                for entry in search(low, high, per_page=PER_PAGE, page=page)["photo"]:
                    found[str(entry["id"])] = int(entry["license"])
        return found


STRATEGIES = {"per photo": _PerPhoto, "owner first": _OwnerFirst, "adaptive": _VerifyOwner}


def owners_for(photos: int, mean: float, rng: random.Random) -> list[int]:
    """Photos per owner averaging `mean`: each owner carries floor(mean) or one more."""
    low, fraction = int(mean), mean - int(mean)
    counts: list[int] = []
    while sum(counts) < photos:
        counts.append(low + (rng.random() < fraction))
    counts[-1] -= sum(counts) - photos
    return [count for count in counts if count > 0]


def run(strategy: type[_VerifyOwner], server: FlickrServer, credentials: Path,
        records: list[Photo]) -> tuple[int, dict[str, str]]:
    """(API calls, {photo id: outcome}) of one strategy over every owner's carried photos."""
    dofn = strategy(VerifyConfig(server.rest_url, str(credentials), "4,11", calls_per_second=0))
    dofn.setup()
    kept, rejected, calls = verify_per_owner(dofn, server, records)
    return calls, {**kept, **rejected}


@usage_said("verify_license_calls")
def main() -> int:
    parser = OneLineParser(prog="python -m benchmarks.verify_license_calls")
    parser.add_argument("--photos", type=arguments.count(), default=1000, help="carried photos per regime")
    args = parser.parse_args()
    failures: list[str] = []
    adaptive_ratio = {}
    print(f"{'photos/owner':>12} {'photos':>7} {'owners':>7} {'missing':>7}  calls per photo: "
          + "  ".join(f"{name:>11}" for name in STRATEGIES))
    with tempfile.TemporaryDirectory() as scratch:
        credentials = Path(scratch) / "flickr.json"
        credentials.write_text(json.dumps({"key": "fixture-key", "secret": "fixture-secret"}))
        for mean in REGIMES:
            counts = owners_for(args.photos, mean, random.Random(int(mean * 10)))
            world, records = carried_world(counts, seed=int(mean * 10))
            by_id = world.by_id()
            missing = sum(by_id[r.photo_id].deleted or by_id[r.photo_id].license not in (4, 11) for r in records)
            with FlickrServer(world, api_keys={"fixture-key"}) as server:
                results = {name: run(strategy, server, credentials, records) for name, strategy in STRATEGIES.items()}
            calls = {name: result[0] for name, result in results.items()}
            print(f"{mean:>12g} {len(records):>7,} {len(counts):>7,} {missing:>7,}  {'':>16}"
                  + "  ".join(f"{calls[name] / len(records):>11.3f}" for name in STRATEGIES))
            adaptive = calls["adaptive"]
            adaptive_ratio[mean] = adaptive / len(records)
            if len({json.dumps(result[1], sort_keys=True) for result in results.values()}) != 1:
                failures.append(f"{mean:g}/owner: the strategies disagree on some photo's outcome")
            if adaptive > len(records):
                failures.append(f"{mean:g}/owner: {adaptive} calls for {len(records)} carried photos")
            if mean >= MANY and adaptive > len(counts) + missing:
                failures.append(f"{mean:g}/owner: {adaptive} calls > {len(counts)} owners + {missing} missing")
    worst = max(adaptive_ratio.values())
    print(f"PASS (1.44M images) at {CALLS_PER_HOUR:,} calls/hour/key: per photo {PASS_IMAGES / CALLS_PER_HOUR:,.0f} "
          f"hours; adaptive between {PASS_IMAGES * min(adaptive_ratio.values()) / CALLS_PER_HOUR:,.0f} and "
          f"{PASS_IMAGES * worst / CALLS_PER_HOUR:,.0f} hours by photos per owner")
    for failure in failures:
        print(f"INVARIANT VIOLATED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"({time.perf_counter() - started:.0f} s against the fixture)")
    sys.exit(status)
