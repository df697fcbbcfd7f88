"""The monthly refresh over a seeded mixture: a first release from test_funnel's world, then a refresh whose input adds
new photos, copies and near copies of released ones, released ids given again, ids rejected before (for reasons
that stand and for reasons that may change), with a takedown list naming released photos by id, URL, page, owner,
sha256 and pHash, one released image changed on its server and another's URL now a 404. Every row of the new input
and every carried photo ends exactly once, in the new release or its rejections, with the outcome the README gives
it; the changelog lists exactly what left and what came; `verify --previous` passes; the same refresh in another
root, its rows in another order, writes the same shards byte for byte.

The oracle is written from what the generator knows of each row and the README ("Releases and the monthly
refresh", "What the job does"), never from the job's code: a released id given again is skipped as decided (kept),
as is an id rejected for good; one rejected for a reason that may change is fetched again; a carried photo is never
fetched again (its server's new bytes or 404 change nothing) and survives its exact and near copies.
"""

from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.fixtures.static_server import StaticServer, image, status
from pipeline.release.verify import verify
from tests.conftest import FAST
from tests.test_funnel import (
    KEPT,
    OPTIONS,
    TABLE_NOT_CC_BY,
    YFCC_NOT_CC_BY,
    Row,
    World,
    check_against_oracle,
    encoded,
    outcomes,
    shard_digests,
    shown,
)

TAKEN_BY_LIST = ("blocklist", "blocklisted")  # by id, URL or owner: before any download
TAKEN_BY_CONTENT = ("blocklist_content", "blocklisted")  # by sha256: the image's own hash
DECIDED = ("ledger", "already_decided")
REPEAT = ("unique_id", "repeated_id")
# Reasons that may change (README: timeouts, server errors, a URL or redirect off --allowed_hosts...) that fail again
MAY_CHANGE = {("fetch", "truncated_body"), ("fetch", "host_not_allowed"), ("fetch", "redirect_not_allowed")}


def split(rows: list[Row], heads: list[Row], rng: random.Random) -> list[list[Row]]:
    """`rows` shuffled into one to three files, each opened by one of `heads` (ordinary rows the launch reads)."""
    rest = [row for row in rows if all(row is not head for head in heads)]
    rng.shuffle(rest)
    count = rng.randrange(1, 4)
    cuts = sorted(rng.sample(range(1, len(rest)), count - 1))
    chosen = rng.sample(heads, count)
    files = [[head, *rest[start:end]] for head, start, end in zip(chosen, [0, *cuts], [*cuts, len(rest)], strict=True)]
    files[-1] += [head for head in heads if all(head is not one for one in chosen)]
    return files


def refresh(world: World, rows: list[Row], heads: list[Row], rng: random.Random, directory: Path, root: Path,
            previous: str | None) -> Path:
    """A refresh into `root` (the first release where `previous` is None) of `rows`, written in an order `rng`
    draws."""
    metadata, blocklist = world.write(directory / "in", split(rows, heads, rng), packed=rng.randrange(-1, 2))
    flags = [f"--input={metadata}", f"--output={root}", f"--allowed_hosts={world.server.host}",
             f"--blocklist={blocklist}", *OPTIONS, *FAST]
    if previous is None:  # what shapes the release is given once, and inherited by the refresh
        flags += [f"--decontaminate={blocklist.parent / 'evaluation'}",
                  *([] if world.fmt == "yfcc" else [f"--input_format={world.fmt}"])]
    else:
        flags.append(f"--previous={previous}")
    name = "r1" if previous is None else "r2"
    assert main(["refresh", f"--release={name}", *flags]) == 0
    return root / "releases" / name


class Refresh:
    """The refresh's input rows and takedowns, built from the first release's outcomes; `carried`: what each photo of
    the first release must become (KEPT or the takedown's outcome)."""

    def __init__(self, world: World, first: dict[str, tuple[str, str, dict]]) -> None:
        self.world, rng = world, world.rng
        first_rows = world.rows
        world.rows = []  # world.add now builds the refresh's input; ids and URLs stay the world's own
        released = {row.photo_id: row for row in first_rows if first[row.ref][:2] == KEPT}
        self.metadata = {photo_id: first[row.ref][2] for photo_id, row in released.items()}
        self.carried = {photo_id: frozenset({KEPT}) for photo_id in released}
        plain = [row for photo_id, row in sorted(released.items()) if not row.groups]
        rng.shuffle(plain)
        # Takedowns: one released photo by id, one by URL, one by its stored image's sha256, and one whole account
        # (the capped one, CAP photos in the release), whose new photo below is kept out too.
        by_id, by_url, by_sha, by_phash, by_page = (plain.pop() for _ in range(5))
        # The account in Flickr's spelling; a table's row whose page names it by an alias is not known to be its
        # (README: only the API knows), so that one stays.
        capped = next(str(row.fields["owner"]) for row in first_rows if "cap" in row.groups).replace("@n", "@N")
        # each as a request may spell it: an id with leading zeros, the URL in https with an escaped letter, the
        # account in lower case, the hashes in upper case
        url = str(by_url.fields["url"]).replace("http://", "https://").replace("/s", "/%73", 1)
        world.blocklist += [f"photo_id 00{by_id.photo_id}", f"url {url}", f"owner {capped.replace('@N', '@n')}",
                            f"sha256 {self.metadata[by_sha.photo_id]['sha256'].upper()}",
                            f"phash {self.metadata[by_phash.photo_id]['phash'].upper()} 0",
                            f"url https://www.flickr.com/photos/someone_else/{by_page.photo_id}/in/album-1/"]
        for photo_id, row in released.items():
            of_capped = str(row.fields["owner"]).replace("@n", "@N") == capped and "page_url" not in row.fields
            if photo_id in (by_id.photo_id, by_url.photo_id, by_page.photo_id) or of_capped:
                self.carried[photo_id] = frozenset({TAKEN_BY_LIST})
        self.carried[by_sha.photo_id] = self.carried[by_phash.photo_id] = frozenset({TAKEN_BY_CONTENT})
        # A released image changed on its server, another's URL now a 404: carried as released, never fetched again.
        self.changed, self.gone = plain.pop(), plain.pop()
        world.server.add(self._path(self.changed), image(world.photo_bytes()))
        world.server.add(self._path(self.gone), status(404))
        # New photos; the first three may open a file.
        for _ in range(rng.randrange(8, 14)):
            world.add(KEPT, world.serve(image(world.photo_bytes())))
        self.heads = world.rows[:3]
        world.add(TAKEN_BY_LIST, world.serve(image(world.photo_bytes())), owner=capped)
        # Released ids given again (the changed one among them): decided for good (kept), skipped, never fetched.
        for row in [self.changed, self.gone, *plain[:3]]:
            self._again(row, DECIDED)
        # New ids for what was taken down: at the URL taken down (kept out before any download), the image taken down
        # by its sha256 (kept out by its content), a copy of the image taken down by id (a new image: the carried
        # copy it would repeat left, README: new images are compared with the carried images that stay).
        world.add(TAKEN_BY_LIST, str(by_url.fields["url"]))
        world.add(TAKEN_BY_CONTENT, world.serve(image(world.bodies[str(by_sha.fields["url"])])))
        world.add(KEPT, world.serve(image(world.bodies[str(by_id.fields["url"])])))
        # A new id at a released photo's URL (the same image: a duplicate of the carried one), and one serving the
        # evaluation image (--decontaminate, inherited).
        world.add(("exact_dedup", "duplicate"), str(plain[8].fields["url"]), duplicate_of=plain[8].photo_id)
        world.add(("decontaminate", "eval_overlap"), world.serve(image(world.evaluation)))
        # A released id given again under BY-NC: the row is refused for its licence, the carried copy stays.
        row = plain[7]
        refused = self.world.add(("license", "not_cc_by"), str(row.fields["url"]), photo_id=row.photo_id,
                                 owner=str(row.fields["owner"]),
                                 license=YFCC_NOT_CC_BY[0] if world.fmt == "yfcc" else TABLE_NOT_CC_BY[0])
        refused.fields["title"] = row.fields["title"]
        # Copies of released photos under new ids: the carried copy survives.
        for row in plain[3:5]:
            world.add(("exact_dedup", "duplicate"), world.serve(image(world.bodies[str(row.fields["url"])])),
                      duplicate_of=row.photo_id)
        for row, scale in zip(plain[5:7], (0.75, 1.5), strict=True):  # a larger copy too: the carried one ranks first
            img = Image.open(io.BytesIO(world.bodies[str(row.fields["url"])])).convert("RGB")
            resized = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
            world.add({KEPT, ("near_dedup", "near_duplicate")}, world.serve(image(encoded(resized, "JPEG",
                                                                                        quality=80))),
                      duplicate_of=row.photo_id)
        # A new photo given twice (the same row, its id spelled otherwise): one row counts, the other is its repeat.
        # (Two rows of one id that differ keep the first by file and line, README: another order keeps another.)
        row = world.add({KEPT, REPEAT}, world.serve(image(world.photo_bytes())), group=f"repeat:{world.seed}")
        self._again(row, KEPT).fields["spelled"] = "00" + row.photo_id
        world.rows[-1].fates, world.rows[-1].groups = row.fates, row.groups
        # Ids rejected before. For good (README: every reason but those that may change; by content, or for an
        # evaluation image, too): skipped as decided. From the row itself (licence): decided the same again. By the
        # takedown list's id, owner or URL: decided again by the list as it is now (one struck off it comes back).
        # For a reason that may change: fetched again (a server error now answered; a body still cut short, a host
        # still not allowed).
        struck = next(row for row in first_rows if first[row.ref][:2] == TAKEN_BY_LIST and not row.groups
                      and f"photo_id 000{row.photo_id}" in world.blocklist)
        world.blocklist.remove(f"photo_id 000{struck.photo_id}")
        world.server.add(self._path(struck), image(world.photo_bytes()))
        self._again(struck, KEPT)
        for row in first_rows:
            found = first[row.ref][:2]
            if row.groups or not row.photo_id or found == KEPT or found[0] == "read" or row is struck:
                continue
            if found == ("fetch", "server_error"):
                world.server.add(self._path(row), image(world.photo_bytes()))
                self._again(row, KEPT)
            elif found[0] == "license" or found == TAKEN_BY_LIST or found in MAY_CHANGE:
                self._again(row, found)
            else:
                self._again(row, DECIDED)

    def _path(self, row: Row) -> str:
        return "/" + str(row.fields["url"]).split("/", 3)[3]

    def _again(self, row: Row, fate: tuple[str, str]) -> Row:
        again = self.world.add(fate, str(row.fields["url"]), photo_id=row.photo_id, owner=str(row.fields["owner"]),
                               license=row.fields["license"])
        again.fields.update({key: value for key, value in row.fields.items() if key != "duplicate_of"})
        # the id as another dump may write it (within the 20 digits an id may take, README: zeros count)
        if self.world.rng.random() < 0.3 and len(row.photo_id) < 20:
            again.fields["spelled"] = "0" + row.photo_id
        return again


def check_refresh(plan: Refresh, release: Path, previous: Path) -> dict:
    world = plan.world
    rejected, kept = outcomes(release)
    carried_ref = f"{previous.name}/parquet/"
    by_ref: dict[str, list[tuple[str, str, dict]]] = defaultdict(list)
    carried_rejections: dict[str, list[tuple[str, str, dict]]] = defaultdict(list)
    for rejection in rejected:
        end = (rejection["stage"], rejection["reason"], rejection)
        if rejection["source_ref"].startswith(carried_ref):
            carried_rejections[rejection["photo_id"]].append(end)
        else:
            by_ref[rejection["source_ref"]].append(end)
    # A kept photo is its carried copy (a released id: its new rows are repeats) or the one new row of its id
    rows_of: dict[str, list[Row]] = defaultdict(list)
    for row in world.rows:
        rows_of[row.photo_id].append(row)
    for photo_id, metadata in kept.items():
        if photo_id in plan.carried:
            carried_rejections[photo_id].append((*KEPT, metadata))
            continue
        unrejected = [row.ref for row in rows_of.get(photo_id, []) if row.ref not in by_ref]
        assert len(unrejected) == 1, f"kept {photo_id}: rows of its id no rejection names: {unrejected}"
        by_ref[unrejected[0]].append((*KEPT, metadata))
    assert not set(by_ref) - {row.ref for row in world.rows}, sorted(set(by_ref) - {row.ref for row in world.rows})
    assert not set(carried_rejections) - set(plan.carried), sorted(set(carried_rejections) - set(plan.carried))
    for row in world.rows:
        found = by_ref.get(row.ref, [])
        assert len(found) == 1, f"{row.ref} ({shown(row)}) ends {len(found)} times: {found}"
        assert found[0][:2] in row.fates, f"{row.ref} ({shown(row)}): {found[0][:2]}, not one of {set(row.fates)}"
        assert found[0][2]["photo_id"] == row.photo_id, (row.ref, found[0])
        if found[0][:2] == REPEAT:
            assert found[0][2]["duplicate_of"] == row.photo_id, (row.ref, found[0])
        elif found[0][:2] != KEPT and "duplicate_of" in row.fields:
            assert found[0][2]["duplicate_of"] == row.fields["duplicate_of"], (row.ref, found[0])
    repeated = [row for row in world.rows if row.groups]
    assert sorted(by_ref[row.ref][0][:2] for row in repeated) == [KEPT, REPEAT], [by_ref[r.ref] for r in repeated]
    for photo_id, fates in plan.carried.items():
        found = carried_rejections.get(photo_id, [])
        assert len(found) == 1, f"carried {photo_id} ends {len(found)} times: {found}"
        assert found[0][:2] in fates, f"carried {photo_id}: {found[0][:2]}, not one of {set(fates)}"
        if found[0][:2] == KEPT:  # the released copy, as it was released: nothing fetched again
            before = {key: value for key, value in plan.metadata[photo_id].items()}
            assert found[0][2] == before, photo_id

    stats = json.loads((release / "stats.json").read_text())
    assert stats["accounted"] and stats["input_rows"] == len(world.rows) + len(plan.carried)
    assert stats["input_rows"] == len(rejected) + len(kept)
    log = json.loads((release / "changelog.json").read_text())
    left: dict[str, list[str]] = defaultdict(list)
    for photo_id, fates in plan.carried.items():
        if fates != {KEPT}:
            left["/".join(next(iter(fates)))].append(photo_id)
    assert {reason: sorted(ids) for reason, ids in log["removed"].items()} == {r: sorted(i) for r, i in left.items()}
    new = {photo_id for photo_id in kept if photo_id not in plan.carried}
    assert sorted(log["added"]) == sorted(new)
    assert log["unchanged"] == sum(fates == {KEPT} for fates in plan.carried.values())
    assert log["skipped_as_decided"] == sum(row.fates == {DECIDED} for row in world.rows)
    ledger = {row["photo_id"]: row for row in pq.read_table(release / "ledger").to_pylist()}
    assert all(ledger[photo_id]["decision"] == "kept" for photo_id in kept)
    assert all(ledger[photo_id]["release"] == "r2" for photo_id in new)
    assert [str(problem) for problem in verify(str(release), str(previous))] == []
    assert main(["verify", str(release), "--previous", str(previous)]) == 0
    return log


@pytest.fixture(scope="module")
def server():
    with StaticServer() as srv:
        yield srv


@pytest.mark.parametrize("seed,fmt", [(7, "yfcc"), (8, "csv")], ids=["yfcc", "csv"])
def test_a_refresh_of_a_mixture_ends_each_new_row_and_carried_photo_once_and_in_any_order_the_same(
        server, tmp_path, seed, fmt):
    world = World(seed, fmt, server)
    world.build()
    rng = random.Random(seed + 2000)
    root = tmp_path / "root"
    first = refresh(world, world.rows, world.heads, rng, tmp_path / "first", root, None)
    first_outcome = check_against_oracle(world, first, json.loads((first / "stats.json").read_text()))

    plan = Refresh(world, first_outcome)
    drawn = {fate for fates in [*(row.fates for row in world.rows), *plan.carried.values()] for fate in fates}
    assert drawn >= {KEPT, DECIDED, TAKEN_BY_LIST, TAKEN_BY_CONTENT, ("exact_dedup", "duplicate"), *MAY_CHANGE}, drawn
    second = refresh(world, world.rows, plan.heads, rng, tmp_path / "second", root, "latest")  # as scheduled
    log = check_refresh(plan, second, first)

    again = refresh(world, world.rows, plan.heads, rng, tmp_path / "again", tmp_path / "elsewhere", str(first))
    check_refresh(plan, again, first)
    assert shard_digests(again) == shard_digests(second)
    assert (again / "ATTRIBUTION.csv").read_bytes() == (second / "ATTRIBUTION.csv").read_bytes()
    assert json.loads((again / "changelog.json").read_text()) == log
