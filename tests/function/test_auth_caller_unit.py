"""token_caller.Authenticator: the caller-credential step as the handler runs it (ID token
first, then App Check, both when both are on), over the demo issuer's keys served by a scripted
fetch. Fast and in-process; the real server is exercised in test_server_auth.py."""
from __future__ import annotations

import asyncio
import json

import pytest

from token_caller import Authenticator, Caller, Denied
from token_upstream import Fetched
from token_settings import from_env
from tools.demo_issuer import DemoIssuer

PROJECT = "123456789012"
APP = f"1:{PROJECT}:web:0a1b2c"


@pytest.fixture(scope="module")
def issuer():
    # Not started: its keys and token signing are used in-process; `fetch` below serves them.
    issuer = DemoIssuer()
    yield issuer
    issuer.server.server_close()


class Fetcher:
    def __init__(self, issuer: DemoIssuer):
        self.issuer = issuer
        self.calls: list[str] = []
        self.down = False

    async def __call__(self, url, *, timeout, max_bytes):
        self.calls.append(url)
        if self.down:
            raise ConnectionRefusedError()
        if url.endswith("/.well-known/openid-configuration"):
            body = {"issuer": self.issuer.issuer, "jwks_uri": self.issuer.jwks_uri}
        else:
            body = self.issuer.jwks()
        return Fetched(200, {"Cache-Control": "max-age=3600"}, json.dumps(body).encode())


def authenticator(issuer, *, id_token=True, app_check=False, app_ids=""):
    env = {}
    if id_token:
        env.update(AUTH_ID_TOKEN_ISSUER=issuer.issuer, AUTH_ID_TOKEN_AUDIENCE=issuer.audience)
    if app_check:
        env.update(AUTH_APP_CHECK_PROJECT_NUMBER=PROJECT, AUTH_APP_CHECK_APP_IDS=app_ids,
                   AUTH_APP_CHECK_JWKS_URI=issuer.jwks_uri)
    fetch = Fetcher(issuer)
    return Authenticator(from_env(env).caller_auth, fetch), fetch


def check(auth, authorization=None, app_check=None):
    return asyncio.run(auth.check(authorization, app_check))


def code(result) -> str:
    assert isinstance(result, Denied), result
    return result.rejection.code


def test_a_valid_id_token_passes_with_its_subject(issuer):
    auth, fetch = authenticator(issuer)
    assert check(auth, "Bearer " + issuer.id_token(sub="user-42")) == Caller("user-42", None)
    assert fetch.calls == [issuer.discovery_url, issuer.jwks_uri]  # discovery, then the keys


def test_a_missing_token_is_refused_without_any_key_fetch(issuer):
    auth, fetch = authenticator(issuer)
    for header in (None, "", "Basic abc", "Bearer not-a-jwt"):
        result = check(auth, header)
        assert code(result) == "unauthenticated"
        assert dict(result.rejection.headers) == {"WWW-Authenticate": 'Bearer realm="outspeed-token"'}
    assert fetch.calls == []


def test_refusal_reasons_name_the_check_and_never_the_token(issuer):
    auth, _ = authenticator(issuer)
    token = issuer.id_token(lifetime=-3600)
    result = check(auth, "Bearer " + token)
    assert result.reason == "id_token: expired"
    for part in token.split("."):
        assert part not in repr(result)


def test_unknown_kid_is_unauthenticated(issuer):
    auth, _ = authenticator(issuer)
    token = issuer.sign(issuer.claims(), issuer.key("RS256"), kid="not-published")
    result = check(auth, "Bearer " + token)
    assert code(result) == "unauthenticated" and result.reason == "id_token: unknown_kid"


def test_no_keys_is_auth_unavailable_with_retry_after(issuer):
    auth, fetch = authenticator(issuer)
    fetch.down = True
    result = check(auth, "Bearer " + issuer.id_token())
    assert code(result) == "auth_unavailable"
    assert int(dict(result.rejection.headers)["Retry-After"]) >= 1
    assert "keys unavailable" in result.reason


def test_app_check_alone(issuer):
    auth, _ = authenticator(issuer, id_token=False, app_check=True, app_ids=APP)
    assert check(auth, None, issuer.app_check_token(PROJECT, APP)) == Caller(None, APP)
    assert code(check(auth, None, None)) == "app_check_failed"
    assert code(check(auth, None, issuer.app_check_token(PROJECT, f"1:{PROJECT}:web:other"))) == "app_check_failed"
    assert code(check(auth, None, issuer.app_check_token("999", APP))) == "app_check_failed"
    # an ID token in the App Check header is not an App Check token
    assert code(check(auth, None, issuer.id_token())) == "app_check_failed"


def test_both_are_required_when_both_are_on_id_token_first(issuer):
    auth, _ = authenticator(issuer, app_check=True)
    good_id, good_app = "Bearer " + issuer.id_token(sub="u1"), issuer.app_check_token(PROJECT, APP)
    assert check(auth, good_id, good_app) == Caller("u1", APP)
    assert code(check(auth, good_id, None)) == "app_check_failed"
    assert code(check(auth, None, good_app)) == "unauthenticated"
    assert code(check(auth, None, None)) == "unauthenticated"  # the ID token is checked first
    assert code(check(auth, "Bearer " + issuer.id_token(audience="other"), good_app)) == "unauthenticated"


def test_importing_the_auth_modules_loads_no_jwt_library_and_makes_no_call():
    """The cold start pays neither PyJWT/cryptography's import (~0.1 s) nor a key fetch: both
    wait for the first token. A fresh interpreter, auth configured, with the issuer pointing at
    a port nothing listens on (a fetch at import would fail the import)."""
    import subprocess
    import sys

    from function_helpers import FUNCTION_DIR
    from tools.function_server import free_port

    code = ("import sys, token_caller, token_keys, token_auth, token_settings;"
            "a = token_caller.Authenticator(token_settings.SETTINGS.caller_auth, None);"
            "print(a.enabled, 'jwt' in sys.modules, 'cryptography' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": FUNCTION_DIR,
           "AUTH_ID_TOKEN_ISSUER": f"http://127.0.0.1:{free_port()}", "AUTH_ID_TOKEN_AUDIENCE": "a",
           "AUTH_APP_CHECK_PROJECT_NUMBER": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False"]


def test_the_library_is_loaded_on_first_check(issuer):
    import token_auth

    auth, _ = authenticator(issuer)
    assert check(auth, "Bearer " + issuer.id_token()) == Caller("demo-user", None)
    assert token_auth.library_loaded()
