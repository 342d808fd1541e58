"""The pure decisions (token_policy) and the URL/outcome mapping (token_upstream), in-process."""
from __future__ import annotations

import json
import re
import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from token_policy import (MAX_BODY_BYTES, Rejection, UpstreamCall, decide_origin, is_json_content_type,
                          parse_json_object, parse_origin, plan)
from token_settings import Settings
import token_upstream
from token_upstream import Failed, Minted, classify, sessions_url

STRICT = Settings(allowed_hostnames=frozenset({"app.example.com"}), https_origins_only=True,
                  allowed_agent_ids=frozenset({"agent-1"}))
OPEN = Settings()
CONFIG = {"model": "outspeed-v1", "voice": "sophie"}
AGENT_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# ---- origin --------------------------------------------------------------------------------

@pytest.mark.parametrize("origin, expected", [
    ("https://app.example.com", ("https", "app.example.com")),
    ("HTTPS://App.Example.Com:8443", ("https", "app.example.com")),
    ("http://[::1]:3000", ("http", "[::1]")),
    ("https://app.example.com@evil.net", None),
    ("https://app.example.com/", None),
    ("https://app.example.com?x", None),
    ("null", None),
    ("https://", None),
    ("https://app.example.com:", None),
    ("https://app.example.com\n", None),
    (" https://app.example.com", None),
])
def test_parse_origin_accepts_only_serialized_origins(origin, expected):
    assert parse_origin(origin) == expected


def test_origin_decisions():
    assert decide_origin("https://app.example.com", STRICT).allowed
    assert decide_origin("https://APP.example.com:444", STRICT).allowed
    for bad in ("http://app.example.com", "https://app.example.com.evil.net", "https://app.example.com@evil.net",
                "null", None):
        decision = decide_origin(bad, STRICT)
        assert not decision.allowed
        assert dict(decision.cors) == {"Vary": "Origin"}  # never Access-Control-Allow-Origin


def test_cors_headers_echo_the_origin_or_star():
    assert dict(decide_origin("https://app.example.com", STRICT).cors) == {
        "Access-Control-Allow-Origin": "https://app.example.com", "Vary": "Origin",
        "Access-Control-Expose-Headers": "Retry-After"}
    for origin in ("http://localhost:5173", "null", None):
        decision = decide_origin(origin, OPEN)
        assert decision.allowed and dict(decision.cors) == {
            "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Retry-After"}


def test_https_only_without_allowlist_refuses_non_https_browser_origins():
    https_only = Settings(https_origins_only=True)
    assert decide_origin(None, https_only).allowed  # native apps send no Origin
    assert decide_origin("https://anything.example", https_only).allowed
    assert not decide_origin("http://anything.example", https_only).allowed
    assert not decide_origin("null", https_only).allowed
    for origin in ("https://anything.example", "http://anything.example", None):
        assert ("Vary", "Origin") in decide_origin(origin, https_only).cors


@given(st.text(max_size=60))
def test_no_arbitrary_text_is_allowed_unless_it_is_exactly_an_allowed_origin(text):
    decision = decide_origin(text, STRICT)
    if decision.allowed:
        scheme, host = parse_origin(text)
        assert (scheme, host) == ("https", "app.example.com")
        assert re.fullmatch(r"(?i)https://app\.example\.com(:[0-9]{1,5})?", text)


# ---- request shape -------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [("application/json", True), ("application/json; charset=utf-8", True),
                                       ("APPLICATION/JSON", True), (" application/json ;x=y", True),
                                       ("application/jsonx", False), ("text/json", False), ("", False), (None, False)])
def test_content_type(value, ok):
    assert is_json_content_type(value) is ok


@pytest.mark.parametrize("raw", [b"", b"[]", b"1", b"{", b'{"a": Infinity}', b"[" * 100000, b"\x80"])
def test_parse_json_object_rejections(raw):
    assert parse_json_object(raw) == Rejection("invalid_json")


def test_parse_json_object_accepts_an_object():
    assert parse_json_object(b'{"agentId": "a"}') == {"agentId": "a"}


def test_max_body_is_16_kib():
    assert MAX_BODY_BYTES == 16384


# ---- flows ---------------------------------------------------------------------------------

def test_agent_flow_plan():
    call = plan({"agentId": "agent-1", "source": "web"}, STRICT)
    assert call == UpstreamCall((("agent_id", "agent-1"), ("source", "web")), None, "agent-1")


@pytest.mark.parametrize("body, code", [
    ({"agentId": "agent-2"}, "agent_not_allowed"),
    ({"agentId": "agent-1", "voice": "x"}, "session_config_not_allowed"),
    ({}, "agent_id_required"),
    ({"agentId": "a\n"}, "invalid_agent_id"),
    ({"agentId": "agent-1", "source": ""}, "invalid_source"),
])
def test_plan_rejections_on_strict(body, code):
    assert plan(body, STRICT) == Rejection(code)


def test_programmatic_and_client_flows():
    programmatic = Settings(session_config=CONFIG)
    assert plan({"source": "s"}, programmatic) == UpstreamCall((("source", "s"),), json.dumps(CONFIG, separators=(",", ":")).encode())
    assert plan({"voice": "x"}, programmatic) == Rejection("session_config_not_allowed")
    merge = Settings(session_config=CONFIG, allow_client_session_config=True)
    assert json.loads(plan({"voice": "alex", "temperature": 0.1}, merge).body) == {**CONFIG, "voice": "alex", "temperature": 0.1}
    client = Settings(allow_client_session_config=True)
    assert json.loads(plan({"instructions": "hé"}, client).body) == {"instructions": "hé"}
    assert plan({"source": "s"}, client) == Rejection("agent_id_required")
    # the agent flow wins over every session config, and the client's fields are dropped
    assert plan({"agentId": "a", "voice": "x"}, merge) == UpstreamCall((("agent_id", "a"),), None, "a")


@hsettings(max_examples=300)
@given(agent_id=st.one_of(st.text(max_size=140), st.from_regex(AGENT_RE, fullmatch=True)),
       source=st.one_of(st.none(), st.text(max_size=70), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)))
def test_nothing_a_caller_sends_reaches_the_url_unencoded(agent_id, source):
    body = {"agentId": agent_id} if source is None else {"agentId": agent_id, "source": source}
    call = plan(body, OPEN)
    if isinstance(call, Rejection):
        assert call.code in ("invalid_agent_id", "invalid_source")
        return
    assert AGENT_RE.fullmatch(agent_id)
    url = sessions_url(Settings(api_base="https://api.outspeed.com"), call)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.outspeed.com", "/v1/realtime/sessions")
    assert not parts.fragment
    expected = {"agent_id": [agent_id]} | ({"source": [source]} if source is not None else {})
    assert parse_qs(parts.query, keep_blank_values=True, strict_parsing=True) == expected


def test_agent_id_is_percent_encoded_in_the_url():
    call = plan({"agentId": "agent:2.v_3", "source": "my-app"}, OPEN)
    assert sessions_url(Settings(api_base="https://api.outspeed.com"), call) == \
        "https://api.outspeed.com/v1/realtime/sessions?agent_id=agent%3A2.v_3&source=my-app"


def test_url_without_params_has_no_query():
    assert sessions_url(Settings(api_base="http://127.0.0.1:1"), UpstreamCall((), b"{}")) == \
        "http://127.0.0.1:1/v1/realtime/sessions"


# ---- upstream outcome mapping --------------------------------------------------------------

@pytest.mark.parametrize("status, body, code", [
    (401, b"{}", "upstream_auth_failed"), (403, b"", "upstream_auth_failed"), (404, b"{}", "agent_not_found"),
    (500, b"{}", "upstream_error"), (503, b"", "upstream_error"), (400, b"{}", "upstream_error"),
    (302, b"", "upstream_error"), (409, b"{}", "upstream_error"),
    (200, b"<html>", "upstream_bad_response"), (200, b"[]", "upstream_bad_response"),
    (200, b'{"client_secret": {"value": ""}}', "upstream_bad_response"),
    (200, b'{"client_secret": {"value": 5}}', "upstream_bad_response"),
    (200, b'{"client_secret": "ek"}', "upstream_bad_response"),
    (201, b'{"client_secret": {}}', "upstream_bad_response"),
])
def test_classify_failures(status, body, code):
    outcome = classify(status, {}, body)
    assert isinstance(outcome, Failed) and outcome.rejection.code == code and outcome.upstream_status == status


def test_classify_success_keeps_the_bytes():
    raw = b'{"client_secret": {"value": "ek_1", "expires_at": 1}, "extra": [1, 2]}'
    assert classify(200, {}, raw) == Minted(raw, 200)


@pytest.mark.parametrize("retry_after, passed", [
    ("7", "7"), (" 120 ", "120"), ("Wed, 21 Oct 2026 07:28:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT"),
    ("x\r\nSet-Cookie: a=b", None), ("", None), ("-1", None), ("1.5", None)])
def test_retry_after_is_passed_only_when_well_formed(retry_after, passed):
    outcome = classify(429, {"Retry-After": retry_after}, b"{}")
    assert outcome.rejection.code == "upstream_rate_limited"
    assert dict(outcome.rejection.headers).get("Retry-After") == passed


def test_the_shared_client_keeps_no_cookies_between_callers():
    """Two mints on the process's one pooled client: the cookie the first answer set is not
    sent with the second caller's request."""
    seen = []

    class SetsCookies(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: both calls may share a connection

        def do_POST(self):
            seen.append(self.headers.get("Cookie"))
            body = b'{"client_secret": {"value": "ek_1"}}'
            self.send_response(200)
            self.send_header("Set-Cookie", "affinity=caller-1; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsCookies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = Settings(api_key="k", api_base=f"http://127.0.0.1:{server.server_address[1]}")
    call = UpstreamCall(params=(("agent_id", "agent-1"),), body=None)

    async def two_calls():
        try:
            return [await token_upstream.mint(call, settings) for _ in range(2)]
        finally:
            await token_upstream.close()

    try:
        assert all(isinstance(outcome, Minted) for outcome in asyncio.run(two_calls()))
        assert seen == [None, None]
    finally:
        server.shutdown()
        server.server_close()
