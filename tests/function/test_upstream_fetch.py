"""token_upstream.fetch: the GET that caller authentication's JWKS / discovery fetches use, on
the same pooled client as the mint, against a real loopback HTTP server."""
from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import token_upstream
from function_helpers import run_with_client
from token_upstream import FetchError, Fetched, fetch

JWKS = b'{"keys": []}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_cookies: list = []

    def log_message(self, *args):
        pass

    def _answer(self, status=200, body=JWKS, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        _Handler.seen_cookies.append(self.headers.get("Cookie"))
        if self.path == "/jwks":
            self._answer(headers=[("Cache-Control", "public, max-age=3600"), ("Set-Cookie", "a=b; Path=/")])
        elif self.path == "/big":
            self._answer(body=b"x" * (64 * 1024))
        elif self.path == "/slow-body":  # Content-Length promised, body trickles
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        elif self.path == "/slow-headers":
            time.sleep(3)
            self._answer()
        elif self.path == "/redirect":
            self._answer(302, b"", headers=[("Location", "/jwks")])
        else:
            self._answer(404, b'{"error": "no"}')


@pytest.fixture(scope="module")
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


run = run_with_client


def test_fetch_returns_status_case_insensitive_headers_and_body(base):
    got = run(fetch(base + "/jwks", timeout=5))
    assert isinstance(got, Fetched)
    assert got.status == 200 and got.body == JWKS
    assert got.headers["cache-control"] == got.headers["Cache-Control"] == "public, max-age=3600"


def test_fetch_returns_other_statuses_as_they_are_and_follows_no_redirect(base):
    assert run(fetch(base + "/missing", timeout=5)).status == 404
    redirected = run(fetch(base + "/redirect", timeout=5))
    assert redirected.status == 302 and redirected.headers["Location"] == "/jwks"


def test_fetch_keeps_no_cookies_between_calls(base):
    async def twice():
        await fetch(base + "/jwks", timeout=5)
        await fetch(base + "/jwks", timeout=5)
    _Handler.seen_cookies.clear()
    run(twice())
    assert _Handler.seen_cookies == [None, None]


def test_fetch_refuses_a_body_over_max_bytes(base):
    with pytest.raises(FetchError, match="over 1024 bytes"):
        run(fetch(base + "/big", timeout=5, max_bytes=1024))
    assert len(run(fetch(base + "/big", timeout=5)).body) == 64 * 1024


@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
def test_fetch_deadline_covers_the_whole_answer(base, path):
    # the answer would take 3-4 s; the deadline is 1 s for headers and body together
    with pytest.raises(FetchError, match="no whole answer within 1"):
        run(fetch(base + path, timeout=1))


def test_fetch_of_an_unreachable_host_is_a_fetch_error():
    with socket_closed_port() as port:
        with pytest.raises(FetchError):
            run(fetch(f"http://127.0.0.1:{port}/jwks", timeout=5))


def test_a_slow_fetch_does_not_stall_a_fast_one_on_the_same_session(base):
    order = []

    async def both():
        async def one(path, name):
            await fetch(base + path, timeout=10)
            order.append(name)
        slow = asyncio.create_task(one("/slow-headers", "slow"))
        await asyncio.sleep(0.1)  # the slow one is under way
        await one("/jwks", "fast")
        assert not slow.done()
        await slow
    run(both())
    assert order == ["fast", "slow"]


class socket_closed_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc):
        return False
