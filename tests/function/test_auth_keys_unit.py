"""token_keys.KeySource: the JWKS cache, driven by a scripted fetch and a fake clock (fast,
in-process). Real-HTTP behaviour against the demo issuer is in test_server_auth.py."""
from __future__ import annotations

import asyncio
import json

import pytest

import token_keys
from token_keys import KeySource, KeysUnavailable, max_age_of
from token_upstream import Fetched
from tools.demo_issuer import SigningKey

JWKS_URL = "https://keys.example.com/jwks"
ISSUER = "https://issuer.example.com"
DISCOVERY = ISSUER + "/.well-known/openid-configuration"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keyserver:
    """The scripted other side of `fetch`: documents per URL, failures, a gate to hold answers."""

    def __init__(self, *keys: SigningKey, max_age: int | None = 3600):
        self.keys = list(keys)
        self.max_age = max_age
        self.calls: list[str] = []
        self.failing = False
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.discovery = {"issuer": ISSUER, "jwks_uri": JWKS_URL}
        self.extra: list = []  # raw JWKS entries published after the keys (malformed, odd)

    async def fetch(self, url: str, *, timeout: float, max_bytes: int) -> Fetched:
        assert 0 < timeout <= 5 and max_bytes <= 1 << 20  # short timeouts, bounded answers
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("scripted failure")
        headers = {"cache-control": f"public, max-age={self.max_age}"} if self.max_age is not None else {}
        if url == DISCOVERY:
            return Fetched(self.status, headers, json.dumps(self.discovery).encode())
        return Fetched(self.status, headers, json.dumps({"keys": [k.jwk() for k in self.keys] + self.extra}).encode())


@pytest.fixture(scope="module")
def k1():
    return SigningKey("RS256", kid="k1")


@pytest.fixture(scope="module")
def k2():
    return SigningKey("ES256", kid="k2")


def run(coro):
    return asyncio.run(coro)


def test_nothing_is_fetched_until_a_key_is_needed(k1):
    server, clock = Keyserver(k1), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)
    assert server.calls == [] and source.fetches == 0
    assert run(source.key("k1")).key_id == "k1"
    assert server.calls == [JWKS_URL]


def test_keys_are_cached_for_max_age_then_refetched(k1):
    server, clock = Keyserver(k1, max_age=600), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        for _ in range(5):
            assert (await source.key("k1")) is not None
        clock.now += 599
        await source.key("k1")
        assert len(server.calls) == 1
        clock.now += 2
        await source.key("k1")
        assert len(server.calls) == 2
    run(scenario())


@pytest.mark.parametrize("header, seconds", [
    (None, 3600), ("public, max-age=120", 120), ("max-age=0", 5), ("no-store", 5), ("no-cache, max-age=600", 5),
    ("max-age=99999999", 86400), ("private", 3600), ('max-age="60"', 60), ("s-maxage=10, max-age=70", 70),
])
def test_max_age_is_read_and_bounded(header, seconds):
    headers = {"Cache-Control": header} if header is not None else {"Content-Type": "application/json"}
    assert max_age_of(headers) == seconds


def test_an_unknown_kid_refetches_once_per_30_seconds(k1, k2):
    server, clock = Keyserver(k1), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        await source.key("k1")
        assert len(server.calls) == 1
        # a flood of made-up kids: one refetch, then none for 30 s
        for i in range(200):
            assert (await source.key(f"made-up-{i}")) is None
            clock.now += 0.1  # 20 s in all
        assert len(server.calls) == 2
        clock.now += 10.1
        assert (await source.key("made-up-again")) is None
        assert len(server.calls) == 3
        # a real rotation is picked up by the next allowed refetch
        server.keys = [k1, k2]
        assert (await source.key("k2")) is None  # within 30 s of the last refetch: not yet
        clock.now += 30
        assert (await source.key("k2")).key_id == "k2"
        assert len(server.calls) == 4
    run(scenario())


def test_a_rotated_key_is_found_by_the_first_unknown_kid_refetch(k1, k2):
    server, clock = Keyserver(k1), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        await source.key("k1")
        server.keys = [k2]  # the issuer rotated: k1 gone, k2 new
        assert (await source.key("k2")).key_id == "k2"
        assert (await source.key("k1")) is None  # the retired key no longer verifies
    run(scenario())


def test_concurrent_misses_share_one_fetch(k1):
    server, clock = Keyserver(k1), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        server.gate = asyncio.Event()
        waiters = [asyncio.ensure_future(source.key("k1")) for _ in range(50)]
        await asyncio.sleep(0.01)
        assert len(server.calls) == 1  # 50 requests waiting on one fetch
        server.gate.set()
        keys = await asyncio.gather(*waiters)
        assert all(key is not None and key.key_id == "k1" for key in keys)
        assert len(server.calls) == 1
    run(scenario())


def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(k1):
    server, clock = Keyserver(k1), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        server.gate = asyncio.Event()
        first = asyncio.ensure_future(source.key("k1"))
        second = asyncio.ensure_future(source.key("k1"))
        await asyncio.sleep(0.01)
        first.cancel()  # its client went away
        await asyncio.sleep(0.01)
        server.gate.set()
        assert (await second).key_id == "k1"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len(server.calls) == 1
    run(scenario())


def test_keys_are_kept_when_a_refetch_fails(k1):
    server, clock = Keyserver(k1, max_age=60), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        await source.key("k1")
        server.failing = True
        clock.now += 61  # expired: refetch, which fails
        assert (await source.key("k1")).key_id == "k1"
        assert len(server.calls) == 2 and source.last_problem == "jwks: ConnectionError: scripted failure"
        # no hammering during the outage: the next attempt waits out the backoff
        for _ in range(20):
            assert (await source.key("k1")) is not None
        assert len(server.calls) == 2
        clock.now += token_keys.FAILURE_BACKOFF_SECONDS
        await source.key("k1")
        assert len(server.calls) == 3
        server.failing = False
        clock.now += token_keys.FAILURE_BACKOFF_SECONDS
        await source.key("k1")
        assert len(server.calls) == 4 and source.last_problem is None
    run(scenario())


@pytest.mark.parametrize("break_it, problem", [
    (lambda s: setattr(s, "failing", True), "jwks: ConnectionError: scripted failure"),
    (lambda s: setattr(s, "status", 503), "jwks: HTTP 503"),
    (lambda s: setattr(s, "keys", []), "jwks: no usable signing key"),
])
def test_no_keys_at_all_is_keys_unavailable_with_retry_after(k1, break_it, problem):
    server, clock = Keyserver(k1), Clock()
    break_it(server)
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)

    async def scenario():
        with pytest.raises(KeysUnavailable) as failure:
            await source.key("k1")
        assert failure.value.retry_after == token_keys.FAILURE_BACKOFF_SECONDS
        assert failure.value.reason == problem
        clock.now += 2
        with pytest.raises(KeysUnavailable) as again:
            await source.key("k1")
        assert again.value.retry_after == token_keys.FAILURE_BACKOFF_SECONDS - 2
        assert len(server.calls) == 1  # backing off, not hammering
    run(scenario())


def test_a_malformed_entry_is_skipped_and_the_other_keys_serve(k1, k2):
    """Issue 18, finding 1: one entry with a non-string `alg` made every fetch raise
    TypeError: no backoff, cached keys unused, 500 for every request."""
    server, clock = Keyserver(k1, k2), Clock()
    server.extra = [{**k1.jwk(), "kid": "odd", "alg": ["RS256"]}, {**k2.jwk(), "kid": "odder", "alg": {"x": 1}}]
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)
    assert run(source.key("k1")).key_id == "k1"
    assert run(source.key("k2")).key_id == "k2"
    assert len(server.calls) == 1 and source.last_problem is None


def test_an_unexpected_error_while_parsing_is_a_failed_fetch(k1, monkeypatch):
    """Whatever the parser trips over: cached keys kept, backoff, KeysUnavailable when none."""
    server, clock = Keyserver(k1, max_age=60), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)
    real_parse = token_keys.parse_jwks

    def tripping(document):
        raise RuntimeError("the parser tripped")

    async def scenario():
        assert (await source.key("k1")).key_id == "k1"
        monkeypatch.setattr(token_keys, "parse_jwks", tripping)
        clock.now += 61  # expired: the refetch trips, the keys held are kept
        assert (await source.key("k1")).key_id == "k1"
        assert source.last_problem == "jwks: unusable document (RuntimeError)"
        for _ in range(10):  # backing off, not refetching per request
            assert (await source.key("k1")) is not None
        assert len(server.calls) == 2
        monkeypatch.setattr(token_keys, "parse_jwks", real_parse)
        clock.now += token_keys.FAILURE_BACKOFF_SECONDS
        await source.key("k1")
        assert len(server.calls) == 3 and source.last_problem is None
    run(scenario())

    cold = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)  # nothing cached: 503
    monkeypatch.setattr(token_keys, "parse_jwks", tripping)
    with pytest.raises(KeysUnavailable) as failure:
        run(cold.key("k1"))
    assert failure.value.retry_after == token_keys.FAILURE_BACKOFF_SECONDS
    assert failure.value.reason == "jwks: unusable document (RuntimeError)"


def _private_jwk(key: SigningKey) -> dict:
    import jwt  # noqa: PLC0415
    algorithm = jwt.algorithms.RSAAlgorithm if key.alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    return {**algorithm.to_jwk(key.private, as_dict=True), "kid": key.kid, "alg": key.alg, "use": "sig"}


def _warnings(output: str) -> list[dict]:
    return [line for line in map(json.loads, filter(None, output.splitlines())) if line["severity"] == "WARNING"]


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_jwks_publishing_a_private_key_is_a_failed_fetch_logged_once(alg, k1, capsys):
    """Issue 18, finding 2: the whole document is refused (not only the leaky entry), the
    cached keys are kept, and one WARNING line says so, without the key material."""
    leaky = SigningKey(alg, kid="leaky")
    server, clock = Keyserver(k1, max_age=60), Clock()
    source = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)
    private = _private_jwk(leaky)

    async def scenario():
        assert (await source.key("k1")).key_id == "k1"
        server.extra = [private]
        clock.now += 61  # expired: the refetch publishes a private key
        assert (await source.key("k1")).key_id == "k1"  # the keys held are kept
        assert (await source.key("leaky")) is None  # and nothing of the new document is used
        assert source.last_problem.startswith("jwks: publishes private key material")
        clock.now += token_keys.FAILURE_BACKOFF_SECONDS + 61
        assert (await source.key("k1")).key_id == "k1"  # refused again: still the old keys
        assert len(server.calls) == 3
    run(scenario())
    cold = KeySource(server.fetch, jwks_uri=JWKS_URL, clock=clock)
    with pytest.raises(KeysUnavailable, match="private key material"):
        run(cold.key("k1"))

    output = capsys.readouterr().out
    warnings = _warnings(output)
    assert len(warnings) == 2, output  # one per source that saw it, not one per refused fetch
    assert "private key material" in warnings[0]["message"] and "leaky" in warnings[0]["message"]
    assert "code" not in warnings[0]  # not a request line: request metrics never count it
    secrets = [value for name, value in private.items() if name in ("d", "p", "q", "dp", "dq", "qi")]
    assert secrets and not [value for value in secrets if value in output]


def test_timeouts_are_reported_as_such(k1):
    async def slow(url, *, timeout, max_bytes):
        raise asyncio.TimeoutError()

    with pytest.raises(KeysUnavailable, match="jwks: timed out"):
        run(KeySource(slow, jwks_uri=JWKS_URL, clock=Clock()).key("k1"))


def test_not_json_is_a_failed_fetch():
    async def html(url, *, timeout, max_bytes):
        return Fetched(200, {}, b"<html>")

    with pytest.raises(KeysUnavailable, match="jwks: not JSON"):
        run(KeySource(html, jwks_uri=JWKS_URL, clock=Clock()).key("k1"))


# ---- OIDC discovery ----------------------------------------------------------------------

def test_discovery_finds_the_jwks_and_is_cached(k1):
    server, clock = Keyserver(k1, max_age=600), Clock()
    source = KeySource(server.fetch, discovery_url=DISCOVERY, issuer=ISSUER, clock=clock)

    async def scenario():
        assert (await source.key("k1")).key_id == "k1"
        assert server.calls == [DISCOVERY, JWKS_URL]
        clock.now += 601
        await source.key("k1")
        assert server.calls == [DISCOVERY, JWKS_URL, DISCOVERY, JWKS_URL]
        # discovery down: the address already known is kept
        server.calls.clear()
        clock.now += 601
        server.discovery = {"error": "down"}
        await source.key("k1")
        assert server.calls == [DISCOVERY, JWKS_URL]
    run(scenario())


@pytest.mark.parametrize("document, problem", [
    ({"issuer": "https://evil.example.com", "jwks_uri": JWKS_URL}, "its issuer is not"),
    ({"issuer": ISSUER}, "jwks_uri missing"),
    ({"issuer": ISSUER, "jwks_uri": "http://keys.example.com/jwks"}, "not an https URL"),
    ({"issuer": ISSUER, "jwks_uri": "file:///etc/passwd"}, "not an https URL"),
    (["not", "an", "object"], "not a JSON object"),
])
def test_a_bad_discovery_document_is_refused(k1, document, problem):
    server = Keyserver(k1)
    server.discovery = document
    source = KeySource(server.fetch, discovery_url=DISCOVERY, issuer=ISSUER, clock=Clock())
    with pytest.raises(KeysUnavailable) as failure:
        run(source.key("k1"))
    assert problem in failure.value.reason
    assert server.calls == [DISCOVERY]  # nothing fetched from an address we did not trust


@pytest.mark.parametrize("url, ok", [
    ("https://keys.example.com/jwks", True), ("http://127.0.0.1:8080/jwks", True), ("http://localhost/jwks", True),
    ("http://[::1]:9/jwks", True), ("http://keys.example.com/jwks", False), ("ftp://x/y", False),
    ("https://user:pw@keys.example.com/", False), ("https:///nohost", False), (None, False), (7, False),
    ("http://127.0.0.1.evil.com/", False), ("https://x.com:99999/", False),
])
def test_key_urls(url, ok):
    assert token_keys.is_key_url(url) is ok
