"""Opening connections within bounds (`http_deadline._GuardedConnect`): the name lookup and the connects are bounded
by the connect timeout and the deadline, and a public-only adapter refuses names that lead to non-public addresses.
Names are made to resolve by replacing `socket.getaddrinfo` (no resolver answers here); the connections are real."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from pipeline.fixtures.static_server import StaticServer, image
from pipeline.io import http_deadline
from pipeline.io.http_deadline import (
    MAX_ADDRESSES,
    DeadlineAdapter,
    deadline_scope,
    interleave_families,
    is_public,
    resolve,
)
from tests.conftest import real_jpeg

NAME = "images.example.test"
_REAL_GETADDRINFO = socket.getaddrinfo


def answers(*addresses: str, port: int) -> list[tuple]:
    return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]


@pytest.fixture
def names(monkeypatch) -> Iterator[dict[str, list[str]]]:
    """name -> the addresses it resolves to; every other host is looked up as usual."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host in table:
            return answers(*table[host], port=port)
        return _REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield table


def session(public_only: bool) -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    adapter = DeadlineAdapter(max_retries=0, public_only=public_only)
    client.mount("http://", adapter)
    client.mount("https://", adapter)
    return client


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["8.8.8.8", "127.0.0.1"], ["::ffff:127.0.0.1"]])
def test_a_public_only_adapter_refuses_a_name_that_leads_to_a_private_address(names, addresses):
    """The server listens on loopback; the name is refused before any connection (no request reaches the server),
    also when only one of its addresses is not public, whichever order the resolver gives them in."""
    with StaticServer() as server:
        server.add("/x.jpg", image(real_jpeg()))
        names[NAME] = addresses
        port = server.host.split(":")[1]
        with deadline_scope(5) as cutoff, pytest.raises(requests.exceptions.ConnectionError):
            session(public_only=True).get(f"http://{NAME}:{port}/x.jpg", timeout=2)
        assert "not a public address" in cutoff.refused_address and "127.0.0.1" in cutoff.refused_address
        assert server.hits.get("/x.jpg", 0) == 0


def test_the_same_name_connects_without_public_only_and_an_address_in_the_url_is_not_judged(names):
    """What tells the refusal apart: the Flickr API client's adapter (not public-only) connects through the same
    name, and a URL that writes the loopback address itself (the allow-list's business) is fetched."""
    with StaticServer() as server:
        server.add("/x.jpg", image(real_jpeg()))
        names[NAME] = ["127.0.0.1"]
        port = server.host.split(":")[1]
        assert session(public_only=False).get(f"http://{NAME}:{port}/x.jpg", timeout=2).content == real_jpeg()
        assert session(public_only=True).get(f"http://127.0.0.1:{port}/x.jpg", timeout=2).content == real_jpeg()
        assert server.hits["/x.jpg"] == 2


def test_a_lookup_that_never_answers_ends_at_the_connect_timeout(monkeypatch):
    """getaddrinfo has no timeout of its own: a resolver that does not answer held the download through all of its
    retries (here, until the test let it go)."""
    release = threading.Event()

    def stuck(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == NAME:
            release.wait(30)
            raise socket.gaierror("gave up")
        return _REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    begun = time.monotonic()
    try:
        with pytest.raises(requests.exceptions.ConnectTimeout):
            session(public_only=True).get(f"http://{NAME}/x.jpg", timeout=(0.3, 5))
    finally:
        release.set()
    assert time.monotonic() - begun < 3


def test_a_lookup_is_bounded_by_what_is_left_of_the_deadline(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(30) and [])
    begun = time.monotonic()
    try:
        with deadline_scope(0.3) as cutoff, pytest.raises(requests.exceptions.ConnectTimeout):
            session(public_only=False).get(f"http://{NAME}/x.jpg", timeout=(20, 20))
    finally:
        release.set()
    assert time.monotonic() - begun < 3 and cutoff.left() < 0


def test_a_name_with_many_addresses_tries_a_few_each_within_the_deadline(names, monkeypatch):
    """Each connect could wait the whole connect timeout: 50 unreachable addresses held a download 50 times that.
    Here connects to these (public, unreachable) addresses are made to time out after what they may wait."""
    tried: list[tuple[object, float]] = []

    def times_out(family, kind, proto, address, limit, options, source):  # type: ignore[no-untyped-def]
        tried.append((address, limit))
        time.sleep(min(limit, 0.2))
        raise TimeoutError("timed out")

    monkeypatch.setattr(http_deadline, "_connect_one", times_out)
    names[NAME] = [f"8.8.{i}.8" for i in range(50)]
    with deadline_scope(0.5), pytest.raises(requests.exceptions.ConnectTimeout):
        session(public_only=True).get(f"http://{NAME}/x.jpg", timeout=(10, 10))
    assert 1 <= len(tried) <= MAX_ADDRESSES
    assert all(limit <= 0.5 for _, limit in tried)  # no connect may wait past the deadline


def test_a_name_listing_many_ipv6_addresses_first_still_has_its_ipv4_ones_tried(names, monkeypatch):
    """Only a few addresses are tried: on a worker without IPv6 a name whose answer began with four IPv6 addresses
    was given up without trying its IPv4 ones."""
    tried: list[str] = []

    def ipv4_only(family, kind, proto, address, limit, options, source):  # type: ignore[no-untyped-def]
        tried.append(address[0])
        if family == socket.AF_INET6:
            raise OSError(101, "Network is unreachable")
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(http_deadline, "_connect_one", ipv4_only)
    names[NAME] = [f"2606:4700::{i}" for i in range(1, 7)] + ["8.8.8.8", "8.8.4.4"]
    with deadline_scope(5), pytest.raises(requests.exceptions.ConnectionError):
        session(public_only=True).get(f"http://{NAME}/x.jpg", timeout=(10, 10))
    assert tried == ["2606:4700::1", "8.8.8.8", "2606:4700::2", "8.8.4.4"]


@given(st.lists(st.sampled_from([socket.AF_INET, socket.AF_INET6]), max_size=12))
def test_interleaving_keeps_every_answer_and_each_familys_order(families):
    answers = [(family, socket.SOCK_STREAM, 6, "", (str(index), 80)) for index, family in enumerate(families)]
    turns = interleave_families(answers)
    assert sorted(turns, key=lambda answer: answer[4]) == sorted(answers, key=lambda answer: answer[4])
    for family in set(families):
        assert [a for a in turns if a[0] == family] == [a for a in answers if a[0] == family]
    # brute force: no family gets two turns running while another still has answers after them
    for position in range(1, len(turns)):
        if turns[position][0] == turns[position - 1][0]:
            assert all(a[0] == turns[position][0] for a in turns[position:])
    assert turns[:1] == answers[:1]


def test_resolve_passes_on_the_resolvers_error_and_its_answer(names):
    names[NAME] = ["8.8.8.8"]
    assert resolve(NAME, 80, socket.AF_UNSPEC, 1.0)[0][4] == ("8.8.8.8", 80)
    with pytest.raises(socket.gaierror):
        resolve("name that is not.valid\x00", 80, socket.AF_UNSPEC, 1.0)


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
    ("::", False), ("fe80::1%eth0", False), ("fc00::1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
])
def test_is_public(address, public):
    assert is_public(address) is public


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_written_as_ipv6_is_judged_as_itself(address):
    assert is_public(f"::ffff:{address}") is is_public(str(address))


@pytest.mark.parametrize("written", [
    "64:ff9b::{}",  # NAT64's well-known prefix: a translator on the worker's network connects to the IPv4 address
    "2002:{:02x}{:02x}:{:02x}{:02x}::1",  # 6to4: a relay delivers to the IPv4 address
    "::{}",  # IPv4-compatible (deprecated)
    "::ffff:0:{}",  # SIIT's IPv4-translated form: a stateless translator delivers to the IPv4 address
])
@pytest.mark.parametrize("ipv4", ["10.0.0.1", "127.0.0.1", "169.254.169.254", "8.8.8.8"])
def test_an_ipv4_address_inside_a_translated_ipv6_one_is_judged_as_itself(written, ipv4):
    """A resolver answering AAAA 64:ff9b::a9fe:a9fe led a worker with NAT64 to its metadata server: ipaddress
    calls every such address global."""
    octets = [int(part) for part in ipv4.split(".")]
    address = written.format(ipv4) if "{}" in written else written.format(*octets)
    assert is_public(address) is is_public(ipv4)


def test_the_local_use_nat64_prefix_is_not_public():
    assert not is_public("64:ff9b:1::a00:1") and not is_public("64:ff9b:1::808:808")


def test_a_pickled_public_only_adapter_stays_public_only():
    """requests pickles an adapter's `__attrs__` only: without its own name there, a copy connected anywhere."""
    import pickle

    copy = pickle.loads(pickle.dumps(DeadlineAdapter(public_only=True)))
    assert copy.public_only and copy.poolmanager.pool_classes_by_scheme["http"].ConnectionCls.public_only
