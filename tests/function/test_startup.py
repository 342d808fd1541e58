"""Malformed settings stop the real server at start-up, with a message naming the variable
(and never quoting the key); a missing key does not stop it."""
from __future__ import annotations

import pytest
import requests

from function_helpers import API_KEY, error_of
from tools.function_server import FunctionServer, StartupError


def _startup_failure(env: dict) -> str:
    """The server's words when it refuses to start; a server that starts anyway is stopped."""
    server = FunctionServer(env)
    try:
        with pytest.raises(StartupError) as failure:
            server.start(timeout=20)
    finally:
        server.stop()
    return str(failure.value)


@pytest.mark.parametrize("name, value", [
    ("SESSION_CONFIG", '["not", "an", "object"]'),
    ("SESSION_CONFIG", "{model: outspeed-v1}"),
    ("SESSION_CONFIG", '{"instructions": "\\ud800"}'),   # parses, but could never be sent
    ("SESSION_CONFIG", '{"temperature": 1e999}'),        # parses as Infinity: not JSON on the wire
    ("UPSTREAM_TIMEOUT_SECONDS", "ten"),
    ("UPSTREAM_TIMEOUT_SECONDS", "0"),
    ("HTTPS_ORIGINS_ONLY", "yes please"),
    ("ALLOWED_HOSTNAMES", "https://app.example.com"),
    ("ALLOWED_AGENT_IDS", "agent-1,agent 2"),
])
def test_malformed_setting_fails_start_up_naming_the_variable(name, value):
    message = _startup_failure({"OUTSPEED_API_KEY": API_KEY, name: value})
    assert name in message
    assert "SettingsError" in message
    assert API_KEY not in message


def test_a_malformed_key_is_named_but_never_quoted():
    bad_key = API_KEY + " trailing-garbage"
    message = _startup_failure({"OUTSPEED_API_KEY": bad_key})
    assert "OUTSPEED_API_KEY" in message
    assert API_KEY not in message and "trailing-garbage" not in message


def test_without_a_key_the_server_starts_and_says_not_configured():
    with FunctionServer({}) as fn:  # nothing at all: every default, no key
        r = requests.post(fn.url + "/token", json={"agentId": "agent-1"}, timeout=15)
        assert r.status_code == 500 and error_of(r) == "not_configured"
        assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_a_key_with_a_trailing_newline_is_used_without_it(upstream, fresh_upstream):
    # `echo key | gcloud secrets versions add` stores the newline; it must not break the header
    with FunctionServer({"OUTSPEED_API_KEY": API_KEY + "\n", "OUTSPEED_API_BASE": upstream.url}) as fn:
        r = requests.post(fn.url + "/token", json={"agentId": "agent-1"}, timeout=15)
        assert r.status_code == 200
        assert upstream.requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"
        assert API_KEY not in fn.output()
