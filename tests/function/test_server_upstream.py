"""Every upstream outcome mapped to the error table, plus timeout, unreachable, not_configured
and keep-alive, against the real server and the scripted stand-in.
"""
from __future__ import annotations

import concurrent.futures

import pytest

from function_helpers import API_KEY, HTTPS_APP, assert_no_secrets, error_of, fn_url

pytestmark = pytest.mark.usefixtures("fresh_upstream")
GOOD = {"agentId": "agent-1", "source": "web"}


@pytest.fixture(scope="module")
def fn(servers):
    return servers.get("strict")


def post(api, fn, body=GOOD):
    return api.post(fn_url(fn), body, headers={"Origin": HTTPS_APP})


@pytest.mark.parametrize("behaviour, status, code", [
    ("401", 502, "upstream_auth_failed"),
    ("403", 502, "upstream_auth_failed"),
    ("404", 404, "agent_not_found"),
    ("500", 502, "upstream_error"),
    ("400", 502, "upstream_error"),
    ("non_json", 502, "upstream_bad_response"),
    ("no_secret", 502, "upstream_bad_response"),
    ("nan_json", 502, "upstream_bad_response"),  # valid to Python, not to a browser's JSON.parse
    ("drop", 502, "upstream_unreachable"),
])
def test_upstream_outcomes_map_to_the_error_table(api, fn, upstream, behaviour, status, code):
    upstream.behaviour = behaviour
    r = post(api, fn)
    assert r.status_code == status
    assert error_of(r) == code
    assert r.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    assert "Retry-After" not in r.headers
    # exactly one call: nothing that may have reached Outspeed is retried
    assert len(upstream.requests) == 1
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    # the upstream's own error text is never relayed
    assert "scripted" not in r.text and "gateway page" not in r.text


def test_upstream_429_passes_retry_after_on(api, fn, upstream):
    upstream.behaviour = "429"
    upstream.state.retry_after = "17"
    r = post(api, fn)
    assert r.status_code == 429 and error_of(r) == "upstream_rate_limited"
    assert r.headers["Retry-After"] == "17"
    assert r.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    # without this a browser page on another origin cannot read Retry-After
    assert r.headers["Access-Control-Expose-Headers"] == "Retry-After"


def test_upstream_429_with_an_http_date_retry_after(api, fn, upstream):
    upstream.behaviour = "429"
    upstream.state.retry_after = "Wed, 21 Oct 2026 07:28:00 GMT"
    r = post(api, fn)
    assert r.status_code == 429 and r.headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"


def test_upstream_429_with_a_garbage_retry_after_drops_it(api, fn, upstream):
    upstream.behaviour = "429"
    upstream.state.retry_after = "soon<script>"
    r = post(api, fn)
    assert r.status_code == 429 and error_of(r) == "upstream_rate_limited"
    assert "Retry-After" not in r.headers


def test_slow_upstream_is_504_after_the_timeout(api, fn, upstream):
    upstream.behaviour = "slow"
    upstream.state.slow_seconds = 3.0  # the server's UPSTREAM_TIMEOUT_SECONDS is 1
    r = post(api, fn)
    assert r.status_code == 504 and error_of(r) == "upstream_timeout"
    assert len(upstream.requests) == 1


def test_a_trickling_answer_is_504_at_the_timeout_not_when_it_ends(api, fn, upstream):
    # Every piece comes within the per-read timeout (1 s), the whole answer does not.
    upstream.behaviour = "trickle"
    upstream.state.trickle_seconds = 0.4  # 8 pieces: ~3.2 s in all
    r = post(api, fn)
    assert r.status_code == 504 and error_of(r) == "upstream_timeout"
    upstream.behaviour = "success"
    assert post(api, fn).status_code == 200  # the abandoned connection did not poison the pool


@pytest.mark.parametrize("behaviour, status, code", [
    ("success", 502, "upstream_bad_response"),
    ("429", 429, "upstream_rate_limited"),
    ("500", 502, "upstream_error"),
])
def test_an_undecodable_answer_keeps_its_status_meaning(api, fn, upstream, behaviour, status, code):
    upstream.behaviour = behaviour
    upstream.state.content_encoding = "gzip"  # claimed, but the body is plain bytes
    r = post(api, fn)
    assert r.status_code == status and error_of(r) == code
    if status == 429:
        assert r.headers["Retry-After"] == "7"


def test_unreachable_upstream_is_502(api, servers):
    fn = servers.get("dead_upstream")
    r = api.post(fn_url(fn), GOOD)
    assert r.status_code == 502 and error_of(r) == "upstream_unreachable"


def test_a_missing_key_is_500_not_configured_after_every_other_check(api, servers, upstream):
    fn = servers.get("no_key")
    # the earlier checks still answer first ...
    assert error_of(api.post(fn_url(fn), GOOD, headers={"Origin": "https://evil.net"})) == "origin_not_allowed"
    assert error_of(api.post(fn_url(fn), {"agentId": "a&b"}, headers={"Origin": HTTPS_APP})) == "invalid_agent_id"
    # ... then a valid request learns that the endpoint is not configured
    r = api.post(fn_url(fn), GOOD, headers={"Origin": HTTPS_APP})
    assert r.status_code == 500 and error_of(r) == "not_configured"
    assert r.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    assert upstream.requests == []


def test_upstream_connections_are_kept_alive_and_pooled(api, fn, upstream):
    for _ in range(30):
        assert post(api, fn).status_code == 200
    assert len(upstream.requests) == 30
    assert upstream.connections <= 2  # 30 without keep-alive; 0 or 1 new ones with it


def test_concurrent_requests_share_a_bounded_pool(api, fn, upstream):
    import requests
    def one(_):
        with requests.Session() as http:
            return http.post(fn_url(fn), json=GOOD, headers={"Origin": HTTPS_APP}, timeout=15).status_code
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses == [200] * 40
    assert len(upstream.requests) == 40
    # THREADS=4: at most 4 concurrent upstream calls, each on a pooled connection
    assert upstream.connections <= 4


def test_recovers_after_upstream_failures(api, fn, upstream):
    for behaviour in ("drop", "500", "slow"):
        upstream.behaviour = behaviour
        upstream.state.slow_seconds = 1.5
        assert post(api, fn).status_code in (502, 504)
    upstream.behaviour = "success"
    assert post(api, fn).status_code == 200


def test_zz_output_holds_no_secrets(api, servers, upstream):
    assert_no_secrets(servers, upstream, api)
