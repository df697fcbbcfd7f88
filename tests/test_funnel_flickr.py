"""`--source=flickr` over a seeded mixture of photos on the Flickr-compatible fixture: two days of uploads split
into windows of pages, CC BY photos beside others the search never lists (another licence, deleted before the
search, uploaded outside the window), photos deleted between the search and the download, videos and BY-NC photos an
answer lists anyway, a malformed entry, an account over the cap, one image under two ids, an entry repeated on a
later page (its page's last photo never listed), a page whose answer is broken. Each photo the answers list ends
exactly once, in the dataset or the rejections, with the outcome the README gives it; a photo no answer lists ends
nowhere, or in the one rejection that says its window or page was not read whole.

The oracle is the generator's knowledge of each photo and what the fixture did to each answer (recorded as it
served them), never the job's code.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import run
from pipeline.fixtures.flickr_server import OMIT, FixturePhoto, FlickrServer, World
from pipeline.fixtures.static_server import PLACEHOLDER_URL, Response, redirect
from pipeline.release.verify import verify
from tests.conftest import FAST
from tests.test_funnel import KEPT, encoded, outcomes, smooth_image

DAY = 1_599_955_200  # 2020-09-13 00:00 UTC
WINDOW = (DAY, DAY + 2 * 86400 - 1)  # --min_upload_date=2020-09-13 --max_upload_date=2020-09-14
CAP = 3
DEPTH, PER_PAGE = 24, 8  # windows of at most 24 photos, pages of 8: several windows of several pages
NOWHERE: frozenset[tuple[str, str]] = frozenset()  # a photo no answer lists
REPEAT = ("unique_id", "repeated_id")


class Fixture(FlickrServer):
    """The fixture, with photos deleted between the search and the download (listed, then the placeholder), and
    the answers of later pages made hostile once each: page 2 of the first window to reach it lists page 1's first
    entry again in place of its own last one; page 2 of another window is no answer (its total is no count)."""

    def __init__(self, world: World, vanished: set[str]) -> None:
        super().__init__(world, api_keys={"fixture-key"})
        self.vanished = vanished
        self.max_per_page, self.search_depth = PER_PAGE, DEPTH
        self.first_entries: dict[tuple[str, str], dict] = {}
        self.repeated: tuple[str, str, str] | None = None  # (window, the id listed twice, the id never listed)
        self.broken: tuple[str, list[str]] | None = None  # (window, the ids of its broken page)
        self.search_paging = self._hostile

    def _hostile(self, params: dict[str, str], photos: dict) -> dict:
        if "extras" not in params:  # a window's count
            return {}
        window = (params["min_upload_date"], params["max_upload_date"])
        entries = photos["photo"]
        if window[0] == window[1]:  # one second of uploads, past the depth: left as Flickr answers it
            return {}
        if params["page"] == "1" and entries:
            self.first_entries[window] = copy.deepcopy(entries[0])
        elif params["page"] == "2" and entries and window in self.first_entries:
            if self.repeated is None:
                again = self.first_entries[window]
                self.repeated = ("-".join(window), str(int(again["id"])), str(int(entries[-1]["id"])))
                entries[-1] = copy.deepcopy(again)
            elif self.broken is None and "-".join(window) != self.repeated[0]:
                self.broken = ("-".join(window), [str(int(entry["id"])) for entry in entries])
                return {"total": None}
        return {}

    def _respond(self, path: str) -> Response:
        if any(f"/{photo_id}_" in path for photo_id in self.vanished):
            self.hits[path] += 1
            return redirect(PLACEHOLDER_URL)
        return super()._respond(path)


class Photos:
    """The generator: each fixture photo and the outcomes it may have."""

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.photos: list[FixturePhoto] = []
        self.fates: dict[str, frozenset[tuple[str, str]]] = {}
        self.vanished: set[str] = set()
        self.groups: dict[str, list[str]] = defaultdict(list)
        self._next = rng.randrange(10**6, 10**9)
        for _ in range(rng.randrange(24, 36)):
            self.add(KEPT)
        for _ in range(2):  # never listed: another licence, deleted before the search, outside the window
            self.add(NOWHERE, license=rng.choice((1, 2, 3, 5, 6, 12, 14)))
        self.add(NOWHERE).deleted = True
        self.add(NOWHERE, uploaded=WINDOW[1] + rng.randrange(1, 3600))
        self.add(NOWHERE, uploaded=WINDOW[0] - rng.randrange(1, 3600))
        for _ in range(2):  # listed, gone by the download
            self.vanished.add(self.add(("fetch", "deleted")).photo_id)
        self.add(("license", "video"), search_overrides={"media": "video"})
        self.add(("license", "not_cc_by"), search_overrides={"license": "2"})  # an answer listing BY-NC anyway
        self.add(("license", "not_cc_by"), search_overrides={"license": "99"})  # an id Flickr has no licence for
        self.add(("read", "bad_api_entry"), search_overrides={"owner": OMIT})  # would credit no one
        self.add(("read", "bad_api_entry"), search_overrides={"title": {"_content": "an object"}})
        # ids as an answer may write them: with leading zeros, as a JSON number; an owner in lower case
        for spelled in (lambda photo: {"id": "00" + photo.photo_id}, lambda photo: {"id": int(photo.photo_id)},
                        lambda photo: {"owner": photo.owner.replace("@N", "@n")}):
            photo = self.add(KEPT)
            photo.search_overrides.update(spelled(photo))
        self.add(KEPT, uploaded=WINDOW[0])  # the window's first and last seconds
        self.add(KEPT, uploaded=WINDOW[1])
        # More uploads in one second than a search lists: read to the depth, the rest said in one rejection.
        self.busy = self.rng.randrange(WINDOW[0], WINDOW[1])
        for _ in range(DEPTH + self.rng.randrange(1, 4)):
            self.groups["busy"].append(self.add({KEPT, *NOWHERE}, uploaded=self.busy).photo_id)
        owner = self.owner()
        for _ in range(CAP + rng.randrange(1, 4)):
            self.groups["cap"].append(self.add({KEPT, ("owner_cap", "owner_cap")}, owner=owner).photo_id)
        data = self.jpeg()
        for _ in range(rng.randrange(2, 4)):  # one image under several ids and accounts: one stays
            self.groups["exact"].append(self.add({KEPT, ("exact_dedup", "duplicate")}, jpeg=data).photo_id)

    def owner(self) -> str:
        return f"{self.rng.randrange(10**7, 10**9)}@N0{self.rng.randrange(10)}"

    def jpeg(self) -> bytes:
        return encoded(smooth_image(self.rng).resize((self.rng.randrange(400, 800), self.rng.randrange(300, 600))),
                       "JPEG", quality=90)

    def add(self, fates: frozenset | set | tuple[str, str], *, license: int | None = None, uploaded: int | None = None,
            owner: str | None = None, jpeg: bytes | None = None, **extra: object) -> FixturePhoto:
        self._next += self.rng.randrange(1, 10**4)
        photo = FixturePhoto(str(self._next), owner or self.owner(), license or self.rng.choice((4, 11)),
                             uploaded if uploaded is not None else self.rng.randrange(WINDOW[0], WINDOW[1] + 1),
                             owner_name=f"Someone {self._next % 97}", title=self.rng.choice(("", "Harbour", "東京")),
                             jpeg=jpeg or self.jpeg(), **extra)  # type: ignore[arg-type]
        self.photos.append(photo)
        self.fates[photo.photo_id] = fates if isinstance(fates, frozenset) else frozenset(
            fates if isinstance(fates, set) else {fates})
        return photo


def run_flickr(photos: Photos, server: Fixture, folder: Path) -> tuple[Path, dict]:
    credentials = folder / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "fixture-secret"}))
    output = folder / "out"
    stats = run(["--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-14", f"--allowed_hosts={server.host}",
                 f"--flickr_search_depth={DEPTH}", "--flickr_calls_per_second=0", f"--per_owner_cap={CAP}",
                 "--backoff_base=0.01", "--max_retries=1",
                 f"--output={output}", *FAST])
    return output, stats


@pytest.mark.parametrize("seed", [11, 12])
def test_a_mixture_of_flickr_photos_ends_each_listed_photo_once(tmp_path, seed):
    photos = Photos(seed)
    with Fixture(World(photos.photos), photos.vanished) as server:
        # answers the client retries: a 502, Flickr's "service unavailable", a 429 asking for a second's rest
        server.inject_http(502, method="flickr.photos.search")
        server.inject_api_error(105, "Service currently unavailable", method="flickr.photos.search")
        server.inject_http(429, method="flickr.photos.search", Retry_After="1")
        output, stats = run_flickr(photos, server, tmp_path)
    assert not server.faults
    assert server.repeated and server.broken, (server.repeated, server.broken)  # both answers were served
    window, twice, displaced = server.repeated
    broken_window, broken_ids = server.broken
    rejected, kept = outcomes(output)
    ends: dict[str, list[tuple[str, str, dict]]] = defaultdict(list)
    about_answers = []
    for rejection in rejected:
        if rejection["photo_id"].startswith("flickr:"):
            about_answers.append((rejection["photo_id"], rejection["stage"], rejection["reason"], rejection["detail"]))
        else:
            ends[rejection["photo_id"]].append((rejection["stage"], rejection["reason"], rejection))
    for photo_id, metadata in kept.items():
        ends[photo_id].append((*KEPT, metadata))
    assert not set(ends) - set(photos.fates), sorted(set(ends) - set(photos.fates))
    # The answers' own rejections: the window whose page repeated an entry says one photo was never listed; the
    # broken page is one rejection for its photos.
    assert Counter((where, stage, reason) for where, stage, reason, _ in about_answers) == Counter({
        (f"flickr:{window}", "read", "incomplete_window"): 1,
        (f"flickr:{broken_window}:p2", "read", "bad_api_response"): 1,
        (f"flickr:{photos.busy}-{photos.busy}", "read", "over_search_depth"): 1}), about_answers
    [said] = [detail for where, _, _, detail in about_answers if where == f"flickr:{window}"]
    assert said.endswith(": 1 never listed"), said
    unlisted = {displaced, *broken_ids} - {twice}
    for photo in photos.photos:
        found = ends.get(photo.photo_id, [])
        fates = photos.fates[photo.photo_id]
        if photo.photo_id in photos.groups["busy"]:  # listed to the depth: once or never
            assert len(found) <= 1 and all(end[:2] == KEPT for end in found), found
        elif fates == NOWHERE or photo.photo_id in unlisted:
            assert found == [], (photo.photo_id, fates, found)
        elif photo.photo_id == twice:  # listed twice: one entry counts, the other is its repeat (or both refused)
            counted = [end[:2] for end in found if end[:2] != REPEAT]
            assert len(found) == 2 and (len(counted) == 1 or counted[0][0] in ("read", "license")), found
            assert counted[0] in fates and len(set(counted)) == 1, (set(fates), found)
            assert all(end[2]["duplicate_of"] == twice for end in found if end[:2] == REPEAT), found
        else:
            assert len(found) == 1 and found[0][:2] in fates, (photo.photo_id, set(fates), found)
        if found and found[0][:2] == KEPT:
            metadata = found[0][2]
            assert metadata["owner_nsid"] == photo.owner and metadata["title"] == photo.title
            assert metadata["license_name"] == {4: "CC BY 2.0", 11: "CC BY 4.0"}[photo.license]
            assert metadata["page_url"] == f"https://www.flickr.com/photos/{photo.owner}/{photo.photo_id}/"
    # An account over the cap keeps CAP of the photos that reach the cap; one image keeps one id.
    assert sum(i in ends for i in photos.groups["busy"]) == DEPTH
    first = {photo_id: found[0][:2] for photo_id, found in ends.items()}
    reached = [i for i in photos.groups["cap"] if first.get(i) in (KEPT, ("owner_cap", "owner_cap"))]
    assert sum(first.get(i) == KEPT for i in photos.groups["cap"]) == min(CAP, len(reached))
    listed = [i for i in photos.groups["exact"] if i in first]
    survivors = [i for i in listed if first[i] != ("exact_dedup", "duplicate")]
    assert len(survivors) == min(1, len(listed)), listed
    assert all(ends[i][0][2]["duplicate_of"] == survivors[0] for i in listed if i not in survivors)
    assert stats["accounted"] and stats["input_rows"] == len(rejected) + len(kept)
    assert [str(problem) for problem in verify(str(output))] == []
    assert pq.read_table(output / "parquet").num_rows == len(kept)
