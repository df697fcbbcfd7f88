"""The Flickr API helpers through the real flickrapi client against the fixture server."""

from __future__ import annotations

import json
import logging
import random
import time
import tracemalloc

import flickrapi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.fixtures.static_server import Response
from pipeline.flickr.client import (
    BadApiResponse,
    FlickrClient,
    FlickrUnreachable,
    KeyPool,
    NoAnswer,
    split_windows,
)
from pipeline.flickr.credentials import Credentials, CredentialsError
from pipeline.io.http_deadline import DeadlineAdapter
from tests.conftest import local_time_zone
from tests.test_http_client import RawServer, bodies_decoding_to_nothing, trickle

KEY = Credentials("fixture-key-123", "fixture-secret-456")


@pytest.fixture(scope="module")
def server():
    with FlickrServer(World(), api_keys={KEY.key}) as srv:
        yield srv


def client(server, sleeps=None, credentials=KEY):
    return FlickrClient(credentials, server.rest_url, backoff_base=0.01,
                        sleep=(sleeps.append if sleeps is not None else (lambda s: None)))


def total_function(api: FlickrClient, licenses: str = "4,11"):
    def total_in(low: int, high: int) -> int:
        answer = api.call("flickr.photos.search", license=licenses, min_upload_date=low, max_upload_date=high,
                          per_page=1)
        return int(answer["photos"]["total"])

    return total_in


def harvest(api: FlickrClient, low: int, high: int, depth: int) -> list[str]:
    """Every photo id the windows yield, paging through each window (per_page 500)."""
    ids = []
    for lo, hi, _total in split_windows(total_function(api), low, high, depth):
        page, pages = 1, 1
        while page <= pages:
            answer = api.call("flickr.photos.search", license="4,11", min_upload_date=lo, max_upload_date=hi,
                              per_page=500, page=page)["photos"]
            pages = answer["pages"]
            ids += [p["id"] for p in answer["photo"]]
            page += 1
    return ids


@given(seed=st.integers(0, 10**6), count=st.integers(0, 1500), shape=st.sampled_from(["uniform", "bursty", "one"]))
@settings(max_examples=25, deadline=None)
def test_windows_never_miss_or_repeat_a_photo(server, seed, count, shape):
    rng = random.Random(seed)
    start = 1_500_000_000
    if shape == "uniform":
        dates = [start + rng.randrange(10**6) for _ in range(count)]
    elif shape == "bursty":  # most uploads in a few minutes, like a bulk upload
        dates = [start + (rng.randrange(300) if rng.random() < 0.8 else rng.randrange(10**6)) for _ in range(count)]
    else:
        dates = [start + 1000] * min(count, 400)  # everything in one second
    server.world.photos = [FixturePhoto(str(i + 1), f"o{i % 7}@N01", rng.choice([4, 11, 4, 2]), d)
                           for i, d in enumerate(dates)]
    depth = 200  # a small cap makes the fixture exercise deep splits quickly
    server.search_depth = depth
    ids = harvest(client(server), start, start + 10**6, depth)
    truth = {p.photo_id for p in server.world.photos if p.license in (4, 11)}
    if shape == "one" and len(truth) > depth:
        assert set(ids) < truth  # an over-cap one-second window cannot be split: reported, not hidden
    else:
        assert sorted(ids) == sorted(truth) and len(ids) == len(set(ids))


def test_transient_errors_are_retried_with_backoff(server):
    sleeps = []
    api = client(server, sleeps)
    server.inject_api_error(105, "Service currently unavailable")
    server.inject_http(503)
    server.inject_http(429)
    assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"
    assert api.calls["flickr.photos.licenses.getInfo"] == 4 and sleeps == pytest.approx([0.01, 0.02, 0.04])


def test_a_rest_the_api_asks_for_is_waited_before_the_next_attempt(server):
    """A 429 or 503 with Retry-After was retried after the fixed 1, 2, 4 and 8 s whatever it asked: each attempt
    another refusal, the call given up after 15 s where the API had asked for 30. Its ask is honoured (capped at
    MAX_RETRY_AFTER_S); an answer without one keeps the backoff."""
    from pipeline.flickr.client import MAX_RETRY_AFTER_S

    sleeps = []
    api = client(server, sleeps)
    server.inject_http(429, **{"Retry-After": "7"})
    server.inject_http(503, **{"Retry-After": "86400"})  # a day: capped
    server.inject_http(503)
    server.inject_http(429, **{"Retry-After": "soon"})  # unreadable: the backoff
    assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"
    assert sleeps == pytest.approx([7.0, MAX_RETRY_AFTER_S, 0.04, 0.08])


def test_a_rest_asked_for_until_the_end_of_year_9999_is_a_capped_wait_east_of_greenwich(server):
    """'Retry-After: Fri, 31 Dec 9999 23:59:59' (no zone) was read in the worker's local time, east of Greenwich in
    the year 10,000, which datetime cannot hold: a ValueError out of the call, past every handler of the source, so
    the range being split (all of the run's windows) was one internal_error. An HTTP date is GMT: a long rest,
    capped."""
    from pipeline.flickr.client import MAX_RETRY_AFTER_S

    sleeps = []
    api = client(server, sleeps)
    server.inject_http(503, **{"Retry-After": "Fri, 31 Dec 9999 23:59:59"})
    with local_time_zone("JST-9"):
        assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"
    assert sleeps == pytest.approx([MAX_RETRY_AFTER_S])


def test_a_search_the_search_databases_cannot_answer_yet_is_retried(server):
    """photos.search's error 10 says its databases are temporarily unavailable: it was raised at once, and one blip
    cost a window's page of 500 photos (or an owner search) as api_error. Other methods' code 10 is no such word."""
    sleeps = []
    api = client(server, sleeps)
    server.inject_api_error(10, "Sorry, the Flickr search API is not currently available.", count=2)
    assert api.call("flickr.photos.search", license="4")["stat"] == "ok"
    assert api.calls["flickr.photos.search"] == 3 and sleeps == pytest.approx([0.01, 0.02])
    server.inject_api_error(10, "Sorry, the Flickr search API is not currently available.")
    with pytest.raises(flickrapi.FlickrError) as err:
        api.call("flickr.photos.licenses.getInfo")
    assert err.value.code == 10 and api.calls["flickr.photos.licenses.getInfo"] == 1


def test_other_errors_are_raised_with_their_code(server):
    server.world.photos = [FixturePhoto("5", "o@N01", 4, 1_500_000_000, deleted=True)]
    with pytest.raises(flickrapi.FlickrError) as err:
        client(server).call("flickr.photos.getInfo", photo_id="5")
    assert err.value.code == 1


def test_an_error_answer_s_body_never_floods_or_forges_the_log(server, caplog):
    """flickrapi logs a non-200 answer's body at ERROR, a line per '&' with each part URL-decoded: 5,000 '&' were
    5,000 lines on each retry, and '%0A' forged a line of one of our own loggers."""
    body = b"&" * 5000 + b"x%0AERROR:pipeline.stages.fetch:FORGED"
    for _ in range(2):
        server.faults.append((None, Response(503, body, "text/plain")))
    with caplog.at_level(logging.WARNING):  # the command line's default
        assert client(server).call("flickr.photos.licenses.getInfo")["stat"] == "ok"  # retried, then answered
    assert len(caplog.records) < 10 and "FORGED" not in caplog.text


def test_an_error_answer_s_body_is_never_read_into_flickrapi(server):
    """flickrapi splits a non-200 answer's text at each '&' and URL-decodes every part for its log, silenced or not:
    60 MB of '&' in a 503 cost 16 s of CPU and 0.5 GB of memory per attempt, five attempts a call. The body of such an
    answer is no longer read: flickrapi sees an empty one, and raises on the status alone."""
    flickrapi_log = logging.getLogger("flickrapi")
    parts = []
    handler = logging.Handler()
    handler.emit = parts.append
    server.faults.append((None, Response(503, b"&" * 5000, "text/plain")))
    flickrapi_log.addHandler(handler)
    flickrapi_log.setLevel(logging.DEBUG)  # what flickrapi does with the body, whatever our level
    try:
        assert client(server).call("flickr.photos.licenses.getInfo")["stat"] == "ok"  # retried, then answered
    finally:
        flickrapi_log.setLevel(logging.CRITICAL)
        flickrapi_log.removeHandler(handler)
    assert len([record for record in parts if record.levelno == logging.ERROR]) <= 2, len(parts)


def test_an_answer_that_would_parse_into_millions_of_values_is_refused_before_it_is_parsed(server):
    """A few MB of `{},{},...` within MAX_ANSWER_BYTES became millions of dicts (64 MiB of them: ~1.5 GB per call
    and thread). An answer is refused when it could make over MAX_ANSWER_VALUES values, counted before parsing; a
    real page of 500 photos holds tens of thousands."""
    import tracemalloc

    flood = b'{"stat": "ok", "photos": {"photo": [' + b"{}," * 1_200_000 + b"{}]}}"
    server.faults.append((None, Response(200, flood, "application/json")))
    tracemalloc.start()
    try:
        with pytest.raises(BadApiResponse, match="over 1,000,000 values"):
            client(server).call("flickr.photos.search", per_page=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * len(flood), (peak, len(flood))  # the answer and its text; parsed, 1.2M dicts took 80 MB
    assert client(server).call("flickr.photos.search", per_page=500)["stat"] == "ok"


def test_an_error_message_echoing_our_key_or_secret_is_raised_without_them(server):
    """The message is published (`api_error` details) and printed: an endpoint or a proxy echoing the request would
    have put the key and the secret there. A 503 body echoing them (flickrapi's message quotes the body) too."""
    server.inject_api_error(3, f"failure: api_key={KEY.key} secret {KEY.secret}")
    with pytest.raises(flickrapi.FlickrError) as caught:
        client(server).call("flickr.photos.search", per_page=1)
    assert caught.value.code == 3 and "[redacted]" in str(caught.value)
    for _ in range(5):
        server.faults.append((None, Response(503, f"echo {KEY.key}&{KEY.secret}".encode(), "text/plain")))
    with pytest.raises(flickrapi.FlickrError) as caught:
        client(server).call("flickr.photos.search", per_page=1)
    assert KEY.key not in str(caught.value) and KEY.secret not in str(caught.value)
    server.faults.clear()


@pytest.mark.parametrize(("before", "echoed"), [(188, [KEY.key, KEY.secret]), (192, [KEY.key, KEY.secret]),
                                               (184, [KEY.secret, KEY.key])])
def test_an_echoed_key_cut_by_the_message_limit_leaves_no_part_of_it(server, before, echoed):
    """The message was cut to 200 characters before the keys were taken out: a key straddling the mark was no longer
    whole, so its first part was published in the `api_error` detail."""
    server.inject_api_error(3, "x" * before + "&".join(echoed))
    with pytest.raises(flickrapi.FlickrError) as caught:
        client(server).call("flickr.photos.search", per_page=1)
    message = str(caught.value)
    assert caught.value.code == 3 and message.startswith("Error: 3: xxx") and len(message) <= 220
    assert KEY.key[:6] not in message and KEY.secret[:6] not in message, message


def test_invalid_key_fails_at_start_without_leaking_it(server, caplog):
    bad = Credentials("wrong-key-789", "wrong-secret-000")
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsError) as err:
        client(server, credentials=bad).check_key()
    assert "error 100" in str(err.value)
    for text in (str(err.value), repr(bad), str(bad), caplog.text):
        assert "wrong-key-789" not in text and "wrong-secret-000" not in text


def test_calls_spread_evenly_over_several_keys(server):
    second = Credentials("fixture-key-second", "fixture-secret-second")
    server.api_keys = {KEY.key, second.key}
    server.calls_by_key.clear()
    try:
        api = client(server, credentials=[KEY, second])
        for _ in range(6):
            api.call("flickr.photos.licenses.getInfo")
        assert server.calls_by_key == {KEY.key: 3, second.key: 3}
    finally:
        server.api_keys = {KEY.key}


def test_a_key_refused_mid_run_hands_its_calls_to_the_others(server):
    """Both keys pass the start's check, then Flickr refuses the second (revoked, or disabled for its rate): every
    call that took it was an error 100, half the job's pages rejected. Its calls now go to the first key; with no
    key left the refusal is raised."""
    second = Credentials("fixture-key-refused", "fixture-secret-refused")
    server.api_keys = {KEY.key, second.key}
    server.calls_by_key.clear()
    try:
        api = client(server, credentials=[KEY, second])
        api.check_key()
        server.api_keys = {KEY.key}
        for _ in range(6):
            assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"
        assert server.calls_by_key == {KEY.key: 1 + 6, second.key: 1 + 1}  # the check, then one refused call
        server.api_keys = set()
        with pytest.raises(flickrapi.FlickrError) as err:
            api.call("flickr.photos.licenses.getInfo")
        assert err.value.code == 100
    finally:
        server.api_keys = {KEY.key}


def test_each_key_keeps_its_own_pace():
    pool = KeyPool((KEY, Credentials("k2", "s2")), per_second=4.0)
    taken = [pool.acquire() for _ in range(4)]
    assert [index for index, _ in taken] == [0, 1, 0, 1]
    # Two keys at 4 calls/s: the first call of each key starts at once, the second waits ~1/4 s.
    assert taken[0][1] == taken[1][1] == 0 and all(0.2 < wait <= 0.25 for _, wait in taken[2:])
    index, wait = pool.acquire(1)  # a call that asks for one key queues behind that key's own calls
    assert index == 1 and wait > 0.45


def test_a_key_too_short_to_be_redacted_is_refused_at_start_without_a_call():
    """Answers have our keys taken out of their texts only where a key is 8 characters or more (a shorter one is in
    every answer's words): an endpoint (--flickr_rest_url: a proxy) that took a 5-character key and echoed the request
    put it, whole, in titles published with the dataset. A Flickr key is 32 hexadecimal digits."""
    short = Credentials("ab1c9", "fixture-secret-456")
    with FlickrServer(World(), api_keys={KEY.key, short.key}) as endpoint:
        with pytest.raises(CredentialsError) as err:
            client(endpoint, credentials=[KEY, short]).check_key()
        assert sum(endpoint.calls.values()) == 0
    message = str(err.value)
    assert "API key 2 of 2" in message and "5 characters" in message and "\n" not in message, message
    assert short.key not in message


def test_one_refused_key_among_several_fails_at_start(server, caplog):
    bad = Credentials("wrong-key-789", "wrong-secret-000")
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsError) as err:
        client(server, credentials=[KEY, bad]).check_key()
    assert "key 2 of 2" in str(err.value) and "error 100" in str(err.value)
    assert "wrong-key-789" not in str(err.value) + caplog.text


def test_faults_can_wait_for_a_method(server):
    api = client(server)
    server.inject_api_error(2, "Unknown user", method="flickr.photos.search")
    assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"  # not this method: the fault waits
    with pytest.raises(flickrapi.FlickrError) as err:
        api.call("flickr.photos.search", license="4")
    assert err.value.code == 2 and not server.faults


@settings(max_examples=100, deadline=None)
@given(keys=st.integers(1, 6), calls=st.integers(0, 40))
def test_calls_spread_evenly_whatever_the_numbers(keys, calls):
    """Oracle: over any number of calls, no key is used more than once more than any other."""
    pool = KeyPool(tuple(Credentials(f"k{i}", "s") for i in range(keys)), per_second=1000.0)
    used = [0] * keys
    for _ in range(calls):
        used[pool.acquire()[0]] += 1
    assert sum(used) == calls and max(used) - min(used) <= 1


# --- answers of another shape, no answer, endless answers -----------------------------------------------

MALFORMED = {
    "html": Response(200, b"<html>proxy error</html>", "text/html"),
    "json_list": Response(200, b"[1, 2]", "application/json"),
    "not_utf8": Response(200, b"\xff\xfe{", "application/json"),
    "fail_without_code": Response(200, json.dumps({"stat": "fail"}).encode(), "application/json"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_an_answer_that_is_no_flickr_json_is_bad_api_response(server, name):
    """flickrapi's parser raised JSONDecodeError, UnicodeDecodeError, AttributeError or KeyError on these:
    each left the client as itself, which no caller handled (a whole date range became one internal_error)."""
    server.faults.append((None, MALFORMED[name]))
    with pytest.raises(BadApiResponse, match=r"no Flickr JSON|is no number"):
        client(server).call("flickr.photos.licenses.getInfo")


def test_an_error_code_of_another_type_is_bad_api_response(server):
    """flickrapi int()s an error's code: {'code': {...}} raised TypeError, which no caller handled."""
    server.faults.append((None, Response(200, json.dumps({"stat": "fail", "code": {"x": 1}, "message": "m"}).encode(),
                                         "application/json")))
    with pytest.raises(BadApiResponse, match=r"code \{'x': 1\} is no number"):
        client(server).call("flickr.photos.licenses.getInfo")


@pytest.mark.parametrize("body", [
    b'{"photos": {"photo": [{"id": "7", "license": "0", "license": "4"}]}, "stat": "ok"}',
    b'{"photos": {"photo": [{"id": "7", "license": "4", "license": "0"}]}, "stat": "ok"}',
    b'{"photo": {"id": "7", "owner": {"nsid": "1@N01", "nsid": "2@N01"}}, "stat": "ok"}',
    b'{"stat": "fail", "code": 1, "message": "Photo not found", "stat": "ok"}',
])
def test_an_answer_giving_a_key_twice_in_one_object_is_bad_api_response(server, body):
    """json.loads keeps a key's last copy, other readers the first: an entry giving "license" as "0" (All Rights
    Reserved) then "4" was read as CC BY 2.0, and a failure followed by "stat": "ok" as an answer."""
    server.faults.append((None, Response(200, body, "application/json")))
    with pytest.raises(BadApiResponse, match=r'gives key "(license|nsid|stat)" twice in one object'):
        client(server).call("flickr.photos.search")


def test_the_answer_is_parsed_by_the_client_so_its_own_bugs_are_not_bad_answers(server, monkeypatch):
    """Only the answer's faults are BadApiResponse: an error raised by the code around flickrapi's call (a
    hook, the deadline, OAuth signing) is raised as itself, not filed as the API's fault for a whole range."""
    from pipeline.flickr import client as client_module

    def broken(*args, **kwargs):
        raise TypeError("a bug in our own code")

    monkeypatch.setattr(client_module, "deadline_scope", broken)
    with pytest.raises(TypeError, match="a bug in our own code"):
        client(server).call("flickr.photos.licenses.getInfo")


def test_a_call_without_an_answer_in_time_is_retried_then_no_answer(server):
    sleeps = []
    api = FlickrClient(KEY, server.rest_url, backoff_base=0.01, timeout=2.0, max_retries=2, sleep=sleeps.append)
    server.inject_delay(6.0, method="flickr.photos.licenses.getInfo")  # one slow answer, then the real one
    assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok" and sleeps[0] == 0.01
    server.faults.clear()
    api = FlickrClient(KEY, server.rest_url, backoff_base=0.01, timeout=0.5, max_retries=2, sleep=sleeps.append)
    server.inject_delay(2.0, count=3, method="flickr.photos.licenses.getInfo")
    with pytest.raises(NoAnswer, match="after 3 attempts: ReadTimeout") as err:
        api.call("flickr.photos.licenses.getInfo")
    assert isinstance(err.value, flickrapi.FlickrError) and err.value.code is None  # callers' api_error


def test_a_trickled_answer_ends_at_the_call_deadline():
    """requests' timeout bounds each read: one byte every 0.2 s held a 1 s call for as long as the server
    liked. Every read now ends at the call's deadline."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    with RawServer(trickle(head + b" " * 1000, 0.2, give_up_after=8.0)) as raw:
        api = FlickrClient(KEY, raw.url("/services/rest/"), max_retries=0, timeout=1.0, sleep=lambda s: None)
        started = time.monotonic()
        with pytest.raises(NoAnswer):
            api.call("flickr.photos.search", per_page=1)
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0, elapsed


def test_an_answer_over_the_size_limit_is_refused_while_read(server):
    server.faults.append((None, Response(200, b"{" + b" " * 200_000 + b"}", "application/json")))
    api = FlickrClient(KEY, server.rest_url, backoff_base=0.01, sleep=lambda s: None, max_answer_bytes=100_000)
    with pytest.raises(BadApiResponse, match="over 100000 bytes"):
        api.call("flickr.photos.licenses.getInfo")
    assert api.call("flickr.photos.licenses.getInfo")["stat"] == "ok"  # the next call is fine


@bodies_decoding_to_nothing
def test_an_answer_that_decodes_to_nothing_is_bounded_on_the_wire_and_not_retried(script):
    """The answer's bound counted decoded bytes only, and urllib3 reads on without returning while nothing decodes:
    an endless body of empty deflate blocks was held whole until the call's deadline (~300 MiB under the 30 s
    default, a 64 MiB bound), then retried as no answer, four times more. It ends once the answer has taken its
    bound and 1 MiB off the socket, as an answer that is no Flickr answer: not retried. The deadline is far off."""
    with RawServer(script) as raw:
        api = FlickrClient(KEY, raw.url("/services/rest/"), max_retries=2, timeout=15.0, sleep=lambda s: None,
                           max_answer_bytes=1 << 20)
        tracemalloc.start()
        try:
            with pytest.raises(BadApiResponse, match="on the wire"):
                api.call("flickr.photos.search", per_page=1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert raw.connections == 1 and api.calls["flickr.photos.search"] == 1
    assert peak < 16 << 20


def test_each_client_has_its_own_bounded_session_not_flickrapis_shared_one(server):
    """flickrapi keeps one requests.Session for the whole process (a class attribute): ours are per client,
    take nothing from the environment (proxies, .netrc) and follow no redirect."""
    shared = flickrapi.auth.OAuthFlickrInterface.session
    api = client(server)
    session = api._apis[0].flickr_oauth.session
    assert session is not shared and not shared.hooks["response"]
    assert session.trust_env is False and session.max_redirects == 0
    assert isinstance(session.get_adapter("https://api.flickr.com/"), DeadlineAdapter)


def test_a_redirect_is_not_followed_nor_asked_again(server):
    """The API answers at its URL; a 302 elsewhere (a captive portal, a hostile proxy) is no answer. It was taken
    for a call nothing answered and made again four times over (the same redirect each time, ~15 s of backoff
    per call): it is an answer that is not Flickr's, refused at once, and its Location is not quoted."""
    with FlickrServer(World(), api_keys={KEY.key}) as elsewhere:
        target = f"{elsewhere.rest_url}?token=s3cr3t-portal-token"
        for _ in range(5):
            server.faults.append((None, Response(302, b"", "text/plain", {"Location": target})))
        api = FlickrClient(KEY, server.rest_url, max_retries=4, sleep=lambda s: None)
        try:
            with pytest.raises(BadApiResponse, match=r"a redirect \(HTTP 302\)") as caught:
                api.call("flickr.photos.licenses.getInfo")
            assert api.calls["flickr.photos.licenses.getInfo"] == 1 and len(server.faults) == 4
            assert "s3cr3t" not in str(caught.value)
        finally:
            server.faults.clear()
        assert not elsewhere.calls



def test_a_redirect_met_by_the_launch_s_key_check_names_the_endpoint(server):
    """At launch a closed port is said with the endpoint's URL; a redirect there (a captive portal) was said without
    it, as the bare answer's fault."""
    server.faults.append((None, Response(302, b"", "text/plain", {"Location": "http://portal.example/login?t=1"})))
    try:
        with pytest.raises(FlickrUnreachable, match=r"the Flickr API at http://127\.0\.0\.1:\d+/services/rest/ gave "
                                                    r"no Flickr answer: the answer is a redirect \(HTTP 302\)"):
            client(server).check_key()
    finally:
        server.faults.clear()

@pytest.mark.parametrize("body", [
    # a field that should be a licence id, a title, a key of an entry, a failure's code, an element of a list
    '{"photo": {"id": "7", "license": "%(key)s"}, "stat": "ok"}',
    '{"photos": {"photo": [{"id": "7", "title": "sent %(secret)s"}]}, "stat": "ok"}',
    '{"photo": {"id": "7", "%(key)s": 1}, "stat": "ok"}',
    '{"photo": {"tags": ["a", ["%(key)s"]]}, "stat": "ok"}',
    # escaped in the JSON text: only the decoded value holds it
    '{"photo": {"id": "7", "license": "%(escaped)s"}, "stat": "ok"}',
])
def test_an_answer_echoing_our_key_or_secret_never_hands_them_on(server, body):
    """Only an error's message was redacted. An endpoint or proxy echoing the request into an answer's values put the
    key into what callers quote (a licence that is no licence id, a photo id, a title stored in the dataset): every
    text of an answer comes back with our keys and secrets taken out."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY.key)
    server.faults.append((None, Response(200, (body % {"key": KEY.key, "secret": KEY.secret, "escaped": escaped}
                                               ).encode(), "application/json")))
    answer = client(server).call("flickr.photos.getInfo", photo_id="7")
    text = json.dumps(answer)
    assert KEY.key not in text and KEY.secret not in text and "[redacted]" in text, text


def test_a_key_given_twice_or_a_code_that_is_no_number_is_refused_without_our_key(server):
    for body in ('{"photo": {"%(key)s": 1, "%(key)s": 2}, "stat": "ok"}',
                 '{"stat": "fail", "code": "%(key)s", "message": "m"}'):
        server.faults.append((None, Response(200, (body % {"key": KEY.key}).encode(), "application/json")))
        with pytest.raises(BadApiResponse) as caught:
            client(server).call("flickr.photos.getInfo", photo_id="7")
        assert KEY.key[:8] not in str(caught.value), str(caught.value)


# --- paging as the answers state it --------------------------------------------------------------------------------

def test_paging_is_read_from_the_answer_the_server_gave():
    """Through the real client: a server serving 100 a page (a proxy's cap) says so in `perpage`, and the pages
    planned from that answer are the ones that list every photo; planning at the 500 asked listed a fifth of them."""
    from pipeline.flickr.client import later_pages, search_paging

    photos = [FixturePhoto(str(7000 + i), "o@N01", 4, 1_600_000_000 + i) for i in range(1000)]
    with FlickrServer(World(photos), api_keys={KEY.key}) as capped:
        capped.max_per_page = 100
        api = client(capped)
        first = api.call("flickr.photos.search", license="4", per_page=500, page=1)["photos"]
        paging = search_paging(first)
        assert (paging.total, paging.pages, paging.perpage) == (1000, 10, 100)
        pages = later_pages(paging)
        assert pages == range(2, 11)
        ids = {p["id"] for p in first["photo"]} | {
            p["id"] for page in pages
            for p in api.call("flickr.photos.search", license="4", per_page=500, page=page)["photos"]["photo"]}
    assert len(ids) == 1000


@pytest.mark.parametrize(("field", "value"), [
    ("perpage", "abc"), ("perpage", None), ("perpage", 0), ("perpage", 501), ("perpage", -1), ("perpage", 1.5),
    ("perpage", True), ("perpage", [100]), ("pages", "lots"), ("pages", -3), ("pages", None), ("pages", 2.0),
    ("total", {"n": 1}), ("total", "1e9"), ("total", "-5"), ("total", ""), ("total", False),
])
def test_paging_that_is_not_counts_is_bad_api_response(field, value):
    from pipeline.flickr.client import search_paging

    answer = {"page": 1, "pages": 2, "perpage": 500, "total": "600", field: value}
    with pytest.raises(BadApiResponse, match=field):
        search_paging(answer)
    for missing in ({"pages": 2, "perpage": 500}, {"total": 5, "perpage": 500}, {"total": 5, "pages": 1}, None, []):
        with pytest.raises(BadApiResponse):
            search_paging(missing)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 10**13), pages=st.integers(0, 10**13), perpage=st.integers(1, 500),
       depth=st.integers(1, 5000))
def test_later_pages_cover_what_the_answer_counts_and_never_pass_the_depth(total, pages, perpage, depth):
    """Oracle: pages 1..n hold n x perpage results; n covers the total (or the stated pages, whichever is more)
    up to the depth, and is never more than the depth needs, whatever the answer claims."""
    from pipeline.flickr.client import SearchPaging, later_pages

    planned = later_pages(SearchPaging(total, pages, perpage), depth)
    last = planned[-1] if planned else 1
    assert planned == range(2, last + 1)
    assert last * perpage >= min(total, depth) and last >= min(pages, -(-depth // perpage))
    assert (last - 1) * perpage < depth or last == 1
