"""--verify_license through the real flickrapi client against the fixture world: deleted and relicensed
photos are caught, and only photos missing from their owner's CC BY list cost a per-photo call."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World, carried_world, verify_per_owner
from pipeline.fixtures.static_server import Response
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.flickr.client import FlickrClient
from pipeline.flickr.credentials import Credentials
from pipeline.records import Photo
from pipeline.sources.fields import upload_date
from pipeline.stages.verify_license import VerifyConfig, _VerifyOwner
from tests.conftest import FAST


@pytest.fixture
def world_and_input(tmp_path):
    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "brick.jpg", "coins.jpg"]
    photos = [FixturePhoto(str(7000 + i), owner, 4, 1_300_000_000 + i, jpeg=demo_image(name))
              for i, (owner, name) in enumerate(zip(["a@N01"] * 3 + ["b@N01"] * 2, names, strict=True))]
    world = World(photos)
    world.relicense("7001", 2, 1_500_000_000)  # now non-commercial: must go
    world.delete("7002")
    world.relicense("7003", 11, 1_500_000_000)  # CC BY 2.0 -> 4.0: still fine, license updated
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        lines = [yfcc_line(i + 1, p.photo_id, server.static_url(p), owner_nsid=p.owner,
                           date_uploaded=str(p.date_upload)) for i, p in enumerate(photos)]
        (tmp_path / "in.tsv").write_text("\n".join(lines) + "\n")
        yield server, credentials, tmp_path / "in.tsv"


def test_deleted_and_relicensed_photos_are_rejected_before_fetch(world_and_input, tmp_path):
    server, credentials, metadata = world_and_input
    stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                 "--verify_license", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--flickr_calls_per_second=0", *FAST])
    assert stats["accounted"]
    rejections = {r["photo_id"]: (r["reason"], r["detail"]) for r in pq.read_table(tmp_path / "out" / "rejections")
                  .to_pylist()}
    assert rejections["7001"] == ("relicensed", "CC BY 2.0 -> CC BY-NC 2.0")
    assert rejections["7002"][0] == "deleted"
    kept = {row["photo_id"]: row["license_name"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert kept == {"7000": "CC BY 2.0", "7003": "CC BY 4.0", "7004": "CC BY 2.0"}  # one name per license
    # Both owners carry 2+ photos: one search page each (its total says no more pages are needed);
    # getInfo only for the two photos missing from their owner's CC BY list.
    assert server.calls["flickr.photos.search"] == 2 and server.calls["flickr.photos.getInfo"] == 2
    assert stats["api_calls"] == {"flickr.photos.getInfo": 2, "flickr.photos.search": 2}  # as the server counted
    assert main(["verify", str(tmp_path / "out")]) == 0  # stats.json rewritten, manifest still agrees
    static_hits = [path for path in server.hits if "7001" in path or "7002" in path]
    assert not static_hits  # rejected photos were never downloaded


def test_calls_are_paced_per_process(world_and_input):
    server, _, _ = world_and_input
    client = FlickrClient(Credentials("fixture-key", "s"), server.rest_url, calls_per_second=4.0)
    other = FlickrClient(Credentials("fixture-key", "s"), server.rest_url, calls_per_second=4.0)  # shares the pace
    start = time.monotonic()
    for api in (client, other, client, other, client):
        api.call("flickr.photos.licenses.getInfo")
    assert time.monotonic() - start >= 4 * 0.25 - 0.02  # five calls at 4/s span four intervals


def test_a_refused_owner_search_falls_back_to_per_photo_checks(world_and_input, tmp_path):
    server, credentials, metadata = world_and_input
    server.inject_api_error(2, "Unknown user", method="flickr.photos.search")  # e.g. a closed account
    stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                 "--verify_license", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--flickr_calls_per_second=0", *FAST])
    reasons = {r["photo_id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "rejections").to_pylist()}
    kept = {row["photo_id"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert stats["accounted"] and reasons == {"7001": "relicensed", "7002": "deleted"}
    assert kept == {"7000", "7003", "7004"}
    assert server.calls["flickr.photos.getInfo"] > 2  # the refused owner's listed photos were checked one by one


def verify(server: FlickrServer, credentials, records: list, search_depth: int = 4000) -> tuple[dict, dict, int]:
    """The stage's DoFn over each owner's photos: ({kept id: license}, {rejected id: reason}, API calls)."""
    dofn = _VerifyOwner(VerifyConfig(server.rest_url, str(credentials), "4,11", 0, search_depth=search_depth))
    dofn.setup()
    return verify_per_owner(dofn, server, records)


def truth(world: World, records: list) -> tuple[set, dict]:
    by_id = world.by_id()
    gone = {r.photo_id: ("deleted" if by_id[r.photo_id].deleted else "relicensed") for r in records
            if by_id[r.photo_id].deleted or by_id[r.photo_id].license not in (4, 11)}
    return {r.photo_id for r in records} - gone.keys(), gone


@pytest.mark.parametrize("regime", [[1] * 40, [1] * 32 + [2] * 8, [3] * 20, [10] * 8, [50] * 3])
def test_calls_never_exceed_carried_photos_and_outcomes_are_exact(tmp_path, regime):
    """Oracle: the fixture world says which photos are gone; the call counter says what it cost.
    At ~1 photo per owner a search cannot pay (it costs a call, a getInfo costs a call); with
    many, one search page per owner plus a getInfo per missing photo."""
    world, records = carried_world(regime, changed=0.1)
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        kept, rejected, calls = verify(server, credentials, records)
    still, gone = truth(world, records)
    assert kept.keys() == still and rejected == gone
    assert calls <= len(records), (calls, len(records))
    if min(regime) >= 3:
        assert calls <= len(regime) + len(gone), (calls, len(regime), len(gone))


def test_an_owner_with_one_carried_photo_costs_one_call(tmp_path):
    world, records = carried_world([1], changed=0)
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        kept, _, calls = verify(server, credentials, records)
        assert kept.keys() == {records[0].photo_id} and calls == 1 and server.calls["flickr.photos.search"] == 0


def test_a_prolific_owner_is_searched_only_around_the_carried_photos(tmp_path):
    """3,000 CC BY photos of which 3 are carried, uploaded the same week: the search is bounded to
    their upload times, so one page lists them, not six pages of the owner's whole history."""
    photos = [FixturePhoto(str(10**6 + i), "busy@N01", 4, 1_100_000_000 + i * 3600) for i in range(3000)]
    carried = photos[1000:1003]
    records = [Photo(photo_id=p.photo_id, owner_nsid=p.owner, date_uploaded=upload_date(p.date_upload, "d"))
               for p in carried]
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(World(photos), api_keys={"fixture-key"}) as server:
        kept, rejected, calls = verify(server, credentials, records)
        assert kept.keys() == {p.photo_id for p in carried} and not rejected and calls == 1
        spread = [Photo(photo_id=p.photo_id, owner_nsid=p.owner) for p in photos[::700]]  # no dates: whole history
        kept, rejected, calls = verify(server, credentials, spread)
        assert kept.keys() == {p.photo_id for p in spread} and calls <= len(spread)


def test_an_owner_search_served_100_a_page_is_paged_as_its_answers_say(tmp_path):
    """An API serving 100 results a page (a proxy's cap, or per_page not honoured): pages planned at 500 skipped
    two in three of these 300 photos, each then costing its own getInfo (201 calls, not 3)."""
    photos = [FixturePhoto(str(10**6 + i), "many@N01", 4, 1_300_000_000 + i * 60) for i in range(300)]
    records = [Photo(photo_id=p.photo_id, owner_nsid=p.owner, date_uploaded=upload_date(p.date_upload, "d"))
               for p in photos]
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(World(photos), api_keys={"fixture-key"}) as server:
        server.max_per_page = 100
        kept, rejected, calls = verify(server, credentials, records)
        assert len(kept) == 300 and not rejected
        assert calls == 3 and server.calls["flickr.photos.getInfo"] == 0


def test_an_owner_over_the_search_depth_is_read_in_windows_when_that_pays(tmp_path):
    """600 carried photos of an owner whose 700 CC BY photos exceed a search depth of 150: windows
    (their counts and pages) cost far fewer calls than 600 getInfo; none is missed or repeated."""
    photos = [FixturePhoto(str(10**6 + i), "big@N01", 4, 1_300_000_000 + i * 60) for i in range(700)]
    world = World(photos)
    world.delete(photos[10].photo_id)
    records = [Photo(photo_id=p.photo_id, owner_nsid=p.owner, date_uploaded=upload_date(p.date_upload, "d"))
               for p in photos[:600]]
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        server.search_depth = 150
        kept, rejected, calls = verify(server, credentials, records, search_depth=150)
        assert len(kept) == 599 and rejected == {photos[10].photo_id: "deleted"}
        assert calls < 30 and server.calls["flickr.photos.getInfo"] == 1


def test_a_malformed_search_answer_falls_back_to_per_photo_checks(tmp_path):
    world, records = carried_world([4], changed=0)
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        for photo in world.photos:
            photo.search_overrides = {"license": "abc"}
        kept, rejected, _ = verify(server, credentials, records)
        assert kept.keys() == {r.photo_id for r in records} and not rejected
        assert server.calls["flickr.photos.getInfo"] == 4


def test_a_verified_license_is_recorded_canonically_with_flickrs_words():
    from pipeline.stages.verify_license import with_license

    verified = with_license(Photo(photo_id="1", license_name="CC BY 2.0",
                                  license_url="https://creativecommons.org/licenses/by/2.0/"), 11)
    assert (verified.license_name, verified.license_url) == ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")
    assert verified.license_source_text == "CC BY 4.0"  # Flickr's own name for license id 11
    assert with_license(Photo(photo_id="1"), 4).license_source_text == "Attribution License"


def test_ids_beyond_cc_by_never_widen_what_the_recheck_admits(tmp_path):
    """--flickr_licenses=4,11,5 used to be taken as the set the re-check admits: a photo CC BY in the dump and
    CC BY-SA (5) today was kept, after the license stage had passed it. Launch refuses such ids, and the stage
    admits CC BY only whatever it is given."""
    world, records = carried_world([1, 1], changed=0)
    for photo in world.photos:
        photo.license = 5  # relicensed CC BY-SA 2.0 since the dump
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        dofn = _VerifyOwner(VerifyConfig(server.rest_url, str(credentials), "4,11,5,1", 0))
        dofn.setup()
        kept, rejected, _ = verify_per_owner(dofn, server, records)
    assert not kept and rejected == {r.photo_id: "relicensed" for r in records}


def test_an_owner_search_whose_totals_never_shrink_costs_no_more_than_checking_each_photo():
    """The plan trusts the first total (4,001: past the depth, worth windows for 100 photos); sub-window totals that
    never shrink made the split ask ~2 x 2**31 counts for photos with no upload date. The windows now stop at the
    calls the per-photo checks would cost, and the photos not listed are checked one by one."""
    class Hostile:
        calls = 0

        def call(self, method, **params):
            Hostile.calls += 1
            assert Hostile.calls < 1000, "runaway"
            if method == "flickr.photos.search":
                return {"photos": {"total": 4001, "photo": []}}
            return {"photo": {"id": params["photo_id"], "license": 4, "owner": {"nsid": "o@N01"}}}

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn._client = Hostile()
    photos = [Photo(str(1000 + i), owner_nsid="o@N01") for i in range(100)]
    kept = list(dofn.process(("o@N01", photos)))
    assert [photo.photo_id for photo in kept] == [photo.photo_id for photo in photos]
    assert Hostile.calls <= 2 * len(photos) + 2


@pytest.mark.parametrize("answer", [{"photo": {"id": "7", "owner": {"nsid": "1@N01"}, **licence}}
                                    for licence in ({}, {"license": -1}, {"license": "x"}, {"license": None},
                                                    {"license": 10**4000}, {"license": "999999999999"})])
def test_a_getinfo_answer_without_a_licence_id_is_a_broken_answer_not_a_relicensing(answer):
    """A missing licence (or -1) was read as licence -1 and the photo rejected as `relicensed` ('CC BY 2.0 -> -1'),
    misleading whoever reviews licence changes; a number no licence id is (over the search's three digits) was a
    `relicensed` to it, 4,000 digits of it in the detail."""
    class Answering:
        def call(self, method, **params):
            return answer

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn._client = Answering()
    photo = Photo(photo_id="7", license_name="CC BY 2.0", license_url="https://creativecommons.org/licenses/by/2.0/",
                  owner_nsid="1@N01")
    [out] = list(dofn.process(("", [photo])))
    assert (out.value.reason, out.value.stage) == ("bad_api_response", "verify_license"), out.value
    assert len(out.value.detail) <= 100


class _MixedUpServer(FlickrServer):
    """A cache or proxy mixing answers up: getInfo for photo 2 answers with photo 1's."""

    def _get_info(self, params):
        return super()._get_info({**params, "photo_id": "1"} if params.get("photo_id") == "2" else params)


def test_a_getinfo_answer_about_another_photo_or_owner_verifies_nothing(tmp_path):
    """Photo 2 is CC BY-NC today; an answer about photo 1 (CC BY) kept it as CC BY. A row crediting photo 1 to
    someone Flickr does not name as its owner was verified and published with the forged credit."""
    world = World([FixturePhoto("1", "a@N01", 4, 1_300_000_000), FixturePhoto("2", "b@N01", 2, 1_300_000_000)])
    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    rows = [Photo(photo_id="2", owner_nsid="b@N01"), Photo(photo_id="1", owner_nsid="forged@N01"),
            Photo(photo_id="1", owner_nsid="a@N01")]
    with _MixedUpServer(world, api_keys={"fixture-key"}) as server:
        dofn = _VerifyOwner(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        dofn.setup()
        out = [item for row in rows for item in dofn.process((row.owner_nsid, [row]))]
    assert [getattr(item, "photo_id", None) for item in out] == [None, None, "1"]
    assert [(item.value.reason, item.value.detail) for item in out[:2]] == [
        ("bad_api_response", "getInfo answered for photo '1'"),
        ("owner_mismatch", "the row credits 'forged@N01', Flickr says 'a@N01'")]


@pytest.mark.parametrize("info", [[], {"id": True, "license": 4}, {"id": "7", "license": 4},
                                  {"id": "7", "license": 4, "owner": {"nsid": ""}},
                                  {"id": "7", "license": 4, "owner": "1@N01"}])
def test_a_getinfo_answer_naming_no_photo_or_owner_is_a_broken_answer(info):
    class Answering:
        def call(self, method, **params):
            return {"photo": info}

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn._client = Answering()
    [out] = list(dofn.process(("", [Photo(photo_id="7", owner_nsid="1@N01")])))
    assert (out.value.reason, out.value.stage) == ("bad_api_response", "verify_license"), out.value


def test_an_owner_search_listing_photos_as_another_owners_lends_them_no_licence():
    """A search for o@N01's CC BY photos answered with entries owned by x@N01 (an answer about another search):
    those photos are checked one by one, and getInfo says they are CC BY-NC."""
    class Answering:
        def call(self, method, **params):
            if method == "flickr.photos.search":
                return {"photos": {"total": 3, "photo": [{"id": str(i), "owner": "x@N01", "license": "4"}
                                                         for i in (1, 2, 3)]}}
            return {"photo": {"id": params["photo_id"], "license": "2", "owner": {"nsid": "o@N01"}}}

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn.min_photos_for_search = 2
    dofn._client = Answering()
    out = list(dofn.process(("o@N01", [Photo(str(i), owner_nsid="o@N01") for i in (1, 2, 3)])))
    assert [item.value.reason for item in out] == ["relicensed"] * 3


@pytest.mark.parametrize("listings", [[("1", "4"), ("2", "4"), ("1", "2")], [("1", "2"), ("2", "4"), ("1", "4")],
                                      [("1", "4"), ("2", "4"), ("1", "11")], [("1", "abc"), ("2", "4"), ("1", "4")]])
def test_an_owner_search_listing_a_photo_with_two_licences_verifies_neither(listings):
    """An owner search listing photo 1 as CC BY 2.0 and again as CC BY-NC 2.0 (a repeated page, a filter not honoured,
    a relicensing while it was paged) kept photo 1 as CC BY without asking about it; getInfo says CC BY-NC."""
    out, calls = _owner_o_verified(listings, "2")
    assert [getattr(item, "photo_id", None) or item.value.reason for item in out] == ["relicensed", "2"]
    assert calls == ["flickr.photos.search", "flickr.photos.getInfo"]  # photo 2, listed once as CC BY, costs nothing


@pytest.mark.parametrize("listed", ["2", "5", "9"])
def test_an_owner_search_listing_a_photo_once_with_a_licence_not_asked_for_verifies_nothing(listed):
    """The search asks for CC BY only; a photo its answer lists once, as CC BY-NC, BY-SA or CC0 (a filter the API did
    not honour), is still checked by its own getInfo, never kept on that listing: with the search's licence left
    unchecked, photo 1 was verified as the licence listed, and published under it."""
    out, calls = _owner_o_verified([("1", listed), ("2", "4")], listed)
    assert [getattr(item, "photo_id", None) or item.value.reason for item in out] == ["relicensed", "2"]
    assert calls == ["flickr.photos.search", "flickr.photos.getInfo"]


def _owner_o_verified(listings: list[tuple[str, str]], info_license: str) -> tuple[list, list[str]]:
    """Owner o@N01's photos 1 and 2 verified where the owner search lists `listings` (id, licence) and each getInfo
    answers `info_license`: what the verification gives, and the API methods it called."""
    calls: list[str] = []

    class Answering:
        def call(self, method, **params):
            calls.append(method)
            if method == "flickr.photos.search":
                return {"photos": {"total": len(listings), "page": 1, "pages": 1, "perpage": 500,
                                   "photo": [{"id": i, "owner": "o@N01", "license": lic} for i, lic in listings]}}
            return {"photo": {"id": params["photo_id"], "license": info_license, "owner": {"nsid": "o@N01"}}}

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn._client = cast(Any, Answering())  # a stand-in client: the one method the verification calls
    return list(dofn.process(("o@N01", [Photo("1", owner_nsid="o@N01"), Photo("2", owner_nsid="o@N01")]))), calls


def photo_7_verified_with_getinfo_answering(body: bytes, credentials) -> object:
    """What verifying photo 7 (owner 1@N01, CC BY) gives where the fixture's getInfo answers `body`."""
    with FlickrServer(World([FixturePhoto("7", "1@N01", 4, 1_300_000_000)]), api_keys={"fixture-key"}) as server:
        server.faults.append(("flickr.photos.getInfo", Response(200, body, "application/json")))
        dofn = _VerifyOwner(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        dofn.setup()
        [out] = list(dofn.process(("1@N01", [Photo(photo_id="7", owner_nsid="1@N01")])))
    return out


@pytest.mark.parametrize("licences", [("2", "4"), ("4", "2")])
def test_a_getinfo_answer_giving_the_licence_twice_verifies_nothing(tmp_path, licences):
    """Photo 7's getInfo giving "license" as "2" (CC BY-NC) then "4": Python keeps the last copy, and the photo was
    kept as CC BY 2.0 where a reader keeping the first says CC BY-NC."""
    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    first, last = licences
    body = (f'{{"photo": {{"id": "7", "license": "{first}", "license": "{last}", "owner": {{"nsid": "1@N01"}}}}, '
            '"stat": "ok"}').encode()
    out = photo_7_verified_with_getinfo_answering(body, credentials)
    assert (out.value.stage, out.value.reason) == ("verify_license", "bad_api_response"), out
    assert '"license" twice' in out.value.detail


@pytest.mark.parametrize("code", [10**4000 - 1, -1, 10**6], ids=["4000-digits", "negative", "a-million"])
def test_a_getinfo_failure_whose_code_is_no_flickr_error_code_is_a_broken_answer(tmp_path, code):
    """A getInfo failure coded with a JSON integer of 4,000 digits was the photo's `api_error`, 'flickr.photos.getInfo
    error 9999…' with every digit said (a 4 kB detail for each photo of the run). Flickr's error codes are small
    numbers: any other is no failure Flickr answered."""
    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    body = json.dumps({"stat": "fail", "code": code, "message": "Photo not found"}).encode()
    out = photo_7_verified_with_getinfo_answering(body, credentials)
    assert (out.value.stage, out.value.reason) == ("verify_license", "bad_api_response"), out
    assert "is no Flickr error code" in out.value.detail and len(out.value.detail) <= 100, out.value.detail


def test_a_row_spelling_its_owner_otherwise_than_flickr_is_that_owners_photo():
    """A carried row crediting "07@n01", whose photo Flickr says is 7@N01's (the same account, as the takedown list
    reads it), was rejected as `owner_mismatch`."""
    class Answering:
        def call(self, method, **params):
            return {"photo": {"id": params["photo_id"], "license": "4", "owner": {"nsid": "7@N01"}}}

    dofn = _VerifyOwner(VerifyConfig(None, None, "4,11", 0))
    dofn._client = Answering()
    [out] = list(dofn.process(("7@N01", [Photo(photo_id="5", owner_nsid="07@n01")])))
    assert isinstance(out, Photo) and out.license_name == "CC BY 2.0", out


def test_photos_naming_no_owner_are_each_their_own_group_not_one(tmp_path, monkeypatch):
    """A table's rows name no owner: all of them were one group, checked one getInfo after another by one worker
    whatever the job's workers (1.44 million rows: 400 hours at one call a second). Each is its own group now; an
    account's photos are still one, for its owner search."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.stages.verify_license import VerifyLicense
    from tests.conftest import local_pipeline

    groups = []
    process = _VerifyOwner.process

    def counting(self, keyed):
        photos = list(keyed[1])
        groups.append(len(photos))
        return process(self, (keyed[0], photos))

    monkeypatch.setattr(_VerifyOwner, "process", counting)
    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    world = World([FixturePhoto(str(i), "1@N01" if i > 3 else "2@N01", 4, 1_300_000_000) for i in range(1, 6)])
    rows = [Photo(photo_id=str(i), owner_nsid="1@N01" if i > 3 else "") for i in range(1, 6)]
    with FlickrServer(world, api_keys={"fixture-key"}) as server, local_pipeline() as p:
        out = p | beam.Create(rows) | VerifyLicense(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        assert_that(out.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["1", "2", "3", "4", "5"]))
    assert sorted(groups) == [1, 1, 1, 2]



def test_a_tables_rows_are_checked_by_one_search_of_the_account_their_flickr_pages_name(tmp_path):
    """A table's rows carry no owner id, only their Flickr page: each was a group of its own, one getInfo a photo,
    where the owner cap counts the account the page names. Grouped by that account (however spelt or escaped), its
    photos cost one owner search and a getInfo for each photo the search does not list; a page naming an alias (only
    the API knows whose) or none leaves a row its own group, checked by its getInfo. Each photo is decided once."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.stages.verify_license import VerifyLicense
    from tests.conftest import local_pipeline

    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    world = World([FixturePhoto(str(i), "7@N01" if i <= 6 else "8@N01", 4, 1_300_000_000 + i) for i in range(1, 9)])
    world.delete("3")
    world.relicense("4", 2, 1_500_000_000)
    pages = {str(i): f"https://www.flickr.com/photos/{'7@N01' if i % 2 else '007%40n01'}/{i}/" for i in range(1, 7)}
    pages |= {"7": "https://www.flickr.com/photos/some_alias/7/", "8": "https://images.example.org/8.jpg"}
    rows = [Photo(photo_id=photo_id, owner_name="a credit", page_url=page, license_name="CC BY 2.0")
            for photo_id, page in pages.items()]
    with FlickrServer(world, api_keys={"fixture-key"}) as server, local_pipeline() as p:
        out = p | beam.Create(rows) | VerifyLicense(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        assert_that(out.kept | beam.Map(lambda photo: (photo.photo_id, photo.license_name)),
                    equal_to([(photo_id, "CC BY 2.0") for photo_id in ("1", "2", "5", "6", "7", "8")]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason)),
                    equal_to([("3", "deleted"), ("4", "relicensed")]), label="rejected")
    # the account's six photos: one search, a getInfo for the two it does not list; the alias's and the other host's
    assert (server.calls["flickr.photos.search"], server.calls["flickr.photos.getInfo"]) == (1, 4)


def test_a_tables_row_whose_flickr_page_names_another_account_than_flickrs_is_an_owner_mismatch(tmp_path):
    """A row naming no owner id is credited by its Flickr page: a page naming an account the photo is not of (Flickr's
    getInfo says whose it is) was verified as it stood, where a row whose owner id differs is `owner_mismatch`."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.stages.verify_license import VerifyLicense
    from tests.conftest import local_pipeline

    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    world = World([FixturePhoto("1", "7@N01", 4, 1_300_000_001), FixturePhoto("2", "8@N01", 4, 1_300_000_002)])
    rows = [Photo(photo_id="1", owner_name="a credit", page_url="https://www.flickr.com/photos/9@N01/1/",
                  license_name="CC BY 2.0"),
            Photo(photo_id="2", owner_name="a credit", page_url="https://www.flickr.com/photos/8@n01/2/",
                  license_name="CC BY 2.0")]
    with FlickrServer(world, api_keys={"fixture-key"}) as server, local_pipeline() as p:
        out = p | beam.Create(rows) | VerifyLicense(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        assert_that(out.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["2"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason, r.detail)),
                    equal_to([("1", "owner_mismatch", "the row's Flickr page names '9@N01', Flickr says '7@N01'")]),
                    label="rejected")


def test_a_tables_rows_crediting_an_account_id_in_their_owner_column_are_checked_by_one_search_of_it(tmp_path):
    """A table made from Flickr's search answers credits each photo's account by its id in its `owner` column and
    gives no page: each row was a group of its own, one getInfo a photo, and a row crediting an account the photo is
    not of was verified as it stood. The id the owner column credits is the row's account where it has no owner id
    and its page names none: the account's photos cost one owner search (and a getInfo for each it does not list),
    and a row crediting another account than Flickr's is `owner_mismatch`; a creator's name that is no account id
    leaves a row its own group, checked by its getInfo."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.stages.verify_license import VerifyLicense
    from tests.conftest import local_pipeline

    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    world = World([FixturePhoto(str(i), "7@N01" if i <= 6 else "8@N01", 4, 1_300_000_000 + i) for i in range(1, 10)])
    world.delete("3")
    credited = {str(i): "7@N01" if i % 2 else "007@n01" for i in range(1, 7)} | {"7": "Jane Doe", "8": "8@N01",
                                                                                   "9": "9@N01"}
    rows = [Photo(photo_id=photo_id, source="csv", owner_name=owner, license_name="CC BY 2.0",
                  download_url=f"https://live.staticflickr.com/65535/{photo_id}_ab_z.jpg")
            for photo_id, owner in credited.items()]
    with FlickrServer(world, api_keys={"fixture-key"}) as server, local_pipeline() as p:
        out = p | beam.Create(rows) | VerifyLicense(VerifyConfig(server.rest_url, str(credentials), "4,11", 0))
        assert_that(out.kept | beam.Map(lambda photo: photo.photo_id),
                    equal_to(["1", "2", "4", "5", "6", "7", "8"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason, r.detail)),
                    equal_to([("3", "deleted", "flickr.photos.getInfo error 1"),
                              ("9", "owner_mismatch", "the row credits '9@N01' as its creator, Flickr says '8@N01'")]),
                    label="rejected")
    # the account's six photos: one search and a getInfo for the one it does not list; 7, 8 and 9 alone: a getInfo each
    assert (server.calls["flickr.photos.search"], server.calls["flickr.photos.getInfo"]) == (1, 4)
