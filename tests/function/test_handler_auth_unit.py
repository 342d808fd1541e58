"""The caller-credential step inside the async handler, in process: where it sits in the order
of checks (a refused caller's body is never even read), what it logs, and that the default
handler's authenticator is the one built from the environment with token_upstream.fetch."""
from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

import token_handler
from token_caller import Authenticator
from token_upstream import Fetched
from token_settings import from_env
from tools.demo_issuer import DemoIssuer

KEY = "sk-unit-handler-auth-3c9d"
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def issuer():
    issuer = DemoIssuer()  # keys and signing only; `fetch` below serves its documents
    yield issuer
    issuer.server.server_close()


def settings_for(issuer: DemoIssuer):
    return from_env({"OUTSPEED_API_KEY": KEY, "ALLOWED_HOSTNAMES": "app.example.com",
                     "AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_AUDIENCE": issuer.audience,
                     "AUTH_ID_TOKEN_JWKS_URI": issuer.jwks_uri})


def authenticator_for(issuer: DemoIssuer, settings, fetched: list[str]):
    async def fetch(url, *, timeout, max_bytes):
        fetched.append(url)
        return Fetched(200, {"Cache-Control": "max-age=600"}, json.dumps(issuer.jwks()).encode())
    return Authenticator(settings.caller_auth, fetch)


class Body:
    """An ASGI receive that records whether the handler read the body."""

    def __init__(self, body: bytes):
        self.body, self.read = body, False

    async def __call__(self):
        self.read = True
        return {"type": "http.request", "body": self.body, "more_body": False}


def request_of(body: Body, method="POST", content_type="application/json", **headers):
    raw = [("content-type", content_type), ("origin", ORIGIN)] + [(k.lower().replace("_", "-"), v)
                                                                   for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": "/token", "raw_path": b"/token", "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in raw], "client": ("203.0.113.9", 5000),
             "server": ("127.0.0.1", 8080)}
    return Request(scope, body)


def log_line(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


@pytest.mark.parametrize("content_type, raw", [
    ("application/json", b'{"agentId": "agent-1"}'),
    ("text/plain", b"not even json"),  # would be 415 without the credential check first
    ("application/json", b"x" * 20000),  # would be 413
])
def test_a_refused_caller_is_answered_before_the_body_is_read(issuer, capsys, content_type, raw):
    settings, fetched = settings_for(issuer), []
    body = Body(raw)
    response = asyncio.run(token_handler.handle(request_of(body, content_type=content_type), settings,
                                                authenticator_for(issuer, settings, fetched)))
    assert response.status_code == 401
    assert json.loads(response.body)["error"] == "unauthenticated"
    assert response.headers["www-authenticate"] == 'Bearer realm="outspeed-token"'
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert body.read is False and fetched == []  # no token: neither the body nor a key was fetched
    line = log_line(capsys)
    assert line["code"] == "unauthenticated" and line["authProblem"] == "id_token: missing"


def test_the_preflight_and_the_method_check_come_before_credentials(issuer, capsys):
    settings = settings_for(issuer)
    auth = authenticator_for(issuer, settings, [])
    preflight = asyncio.run(token_handler.handle(request_of(Body(b""), method="OPTIONS"), settings, auth))
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    wrong_method = asyncio.run(token_handler.handle(request_of(Body(b""), method="PUT"), settings, auth))
    assert wrong_method.status_code == 405


def test_a_verified_caller_goes_on_to_the_body_checks_and_is_logged(issuer, capsys):
    settings, fetched = settings_for(issuer), []
    auth = authenticator_for(issuer, settings, fetched)
    body = Body(b'{"agentId": "bad agent!"}')
    token = issuer.id_token(sub="user-7")
    response = asyncio.run(token_handler.handle(request_of(body, authorization=f"Bearer {token}"), settings, auth))
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_agent_id"
    assert body.read and fetched == [issuer.jwks_uri]
    line = log_line(capsys)
    assert line["subject"] == "user-7" and "authProblem" not in line
    assert token not in json.dumps(line)


def test_the_process_authenticator_is_built_from_the_environment_on_the_pooled_session():
    """With AUTH_* set, the handler's authenticator checks both kinds of token and fetches keys
    through token_upstream.fetch (the same pooled client as the Outspeed call); importing it
    opened no session and loaded no JWT library (a fresh interpreter)."""
    import subprocess
    import sys

    from function_helpers import FUNCTION_DIR

    code = ("import sys, token_handler, token_upstream as u; a = token_handler.AUTHENTICATOR;"
            "print(a.id_keys._fetch is u.fetch, a.app_check_keys._fetch is u.fetch,"
            " a.id_keys._fixed_jwks_uri, 'jwt' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": FUNCTION_DIR,
           "AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/p", "AUTH_ID_TOKEN_AUDIENCE": "p",
           "AUTH_APP_CHECK_PROJECT_NUMBER": "123"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "None", "False"]
