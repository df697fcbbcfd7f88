"""The Flickr-like static image server of the demo, the tests and the benchmarks (pipeline/fixtures/static_server.py):
each path's scripted answers, the last repeating, counted per path; Flickr's size suffixes fall back to the photo."""

from __future__ import annotations

import http.client

from pipeline.fixtures.static_server import (
    PLACEHOLDER_URL,
    StaticServer,
    cut_short,
    image,
    redirect,
    status,
)


def _ask(server: StaticServer, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(server.host, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        try:
            read = answer.read()
        except http.client.IncompleteRead as cut:
            read = cut.partial
        return answer.status, dict(answer.getheaders()), read
    finally:
        connection.close()


def test_a_path_answers_its_scripted_answers_in_turn_the_last_repeating_and_counted():
    with StaticServer() as server:
        server.add("/1/5_ab.jpg", status(500), status(429, Retry_After="3"), image(b"jpeg"))
        answers = [_ask(server, "/1/5_ab.jpg") for _ in range(5)]
        assert [code for code, _, _ in answers] == [500, 429, 200, 200, 200]
        assert answers[1][1]["Retry-After"] == "3"  # the header's name as HTTP spells it
        assert answers[4][2] == b"jpeg" and answers[4][1]["Content-Type"] == "image/jpeg"
        assert server.hits["/1/5_ab.jpg"] == 5 and server.route_count == 1


def test_a_size_suffix_falls_back_to_the_photo_and_counts_as_it_and_a_query_is_ignored():
    with StaticServer() as server:
        url = server.add("/1/5_ab.jpg", image(b"jpeg"))
        assert url == f"http://{server.host}/1/5_ab.jpg" and server.host.startswith("127.0.0.1:")
        for path in ("/1/5_ab_z.jpg", "/1/5_ab_b.jpg", "/1/5_ab.jpg?zz=1"):
            assert _ask(server, path)[::2] == (200, b"jpeg"), path
        assert server.hits["/1/5_ab.jpg"] == 3 and "/1/5_ab_z.jpg" not in server.hits
        server.add("/1/5_ab_z.jpg", image(b"small"))  # a size of its own is its own
        assert _ask(server, "/1/5_ab_z.jpg")[2] == b"small"
        for path in ("/1/6_ab.jpg", "/1/5_ab_zz.jpg", "/1/5_ab_z.png"):
            assert _ask(server, path)[0] == 404, path
        server.add("/1/7_ab.jpg")  # a path given no answer: none
        assert _ask(server, "/1/7_ab.jpg")[0] == 404


def test_a_redirect_a_cut_short_body_and_a_post_are_answered_as_said():
    with StaticServer() as server:
        server.add("/gone.jpg", redirect(PLACEHOLDER_URL))
        server.add("/cut.jpg", cut_short(b"12345", 100))
        code, headers, _ = _ask(server, "/gone.jpg")
        assert code == 302 and headers["Location"] == PLACEHOLDER_URL
        code, headers, body = _ask(server, "/cut.jpg")
        assert code == 200 and headers["Content-Length"] == "100" and body == b"12345"
        assert _ask(server, "/gone.jpg", "POST", b"x=1")[0] == 405  # a plain static host takes no POST
        assert _ask(server, "/cut.jpg")[0] == 200  # the server answers on after a connection it closed early


def test_the_user_agent_of_every_request_is_recorded():
    with StaticServer() as server:
        server.add("/a.jpg", image(b"a"))
        _ask(server, "/a.jpg", headers={"User-Agent": "pass-pipeline/test (+https://example.org)"})
        _ask(server, "/missing.jpg", headers={"User-Agent": "other"})
        assert server.user_agents == ["pass-pipeline/test (+https://example.org)", "other"]


def test_routes_given_as_the_server_is_made_are_served():
    """`StaticServer(routes)` added each route before the server had a port, asking it for the route's URL: every
    server made with routes failed as it was made (AttributeError), so only `add` could script one."""
    routes = {"/1/5_ab.jpg": [status(500), image(b"jpeg")], "/gone.jpg": [redirect(PLACEHOLDER_URL)]}
    with StaticServer(routes) as server:
        assert server.route_count == 2
        assert [_ask(server, "/1/5_ab_z.jpg")[0] for _ in range(3)] == [500, 200, 200]
        assert _ask(server, "/gone.jpg")[1]["Location"] == PLACEHOLDER_URL
