"""token_consume (App Check replay protection, issue 16) in-process: the settings that switch it
on, the pure answer -> outcome decisions, and the Consumer's access-token cache over a scripted
fetch (the real server, over HTTP, is exercised in test_server_consume.py)."""
from __future__ import annotations

import asyncio
import json

import pytest

import token_consume
from token_consume import AccessToken, Consumed, Consumer, Refused, access_token_of, decide
from token_settings import (DEFAULT_APP_CHECK_API_BASE, DEFAULT_METADATA_HOST, SettingsError, from_env)
from token_upstream import Fetched, FetchError

APP = {"AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"}
ON = {**APP, "AUTH_APP_CHECK_CONSUME": "true"}


# ---- settings ----------------------------------------------------------------------------

def test_consume_is_off_by_default_and_defaults_point_at_google():
    check = from_env(APP).caller_auth.app_check
    assert check.consume is False
    on = from_env(ON).caller_auth.app_check
    assert on.consume is True
    assert (on.api_base, on.metadata_host) == (DEFAULT_APP_CHECK_API_BASE, DEFAULT_METADATA_HOST)
    assert token_consume.verify_url(on) == \
        "https://firebaseappcheck.googleapis.com/v1beta/projects/123456789012:verifyAppCheckToken"
    assert token_consume.metadata_url(on) == \
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"


def test_local_runs_point_both_at_a_loopback_stand_in():
    on = from_env({**ON, "AUTH_APP_CHECK_API_BASE": "http://127.0.0.1:8089/", "GCE_METADATA_HOST": "127.0.0.1:8089"})
    check = on.caller_auth.app_check
    assert token_consume.verify_url(check) == "http://127.0.0.1:8089/v1beta/projects/123456789012:verifyAppCheckToken"
    assert token_consume.metadata_url(check).startswith("http://127.0.0.1:8089/computeMetadata/")


@pytest.mark.parametrize("env, name", [
    ({"AUTH_APP_CHECK_CONSUME": "true"}, "AUTH_APP_CHECK_CONSUME"),  # nothing to consume
    ({**ON, "AUTH_APP_CHECK_CONSUME": "yes"}, "AUTH_APP_CHECK_CONSUME"),
    ({**ON, "AUTH_APP_CHECK_API_BASE": "http://firebaseappcheck.example.com"}, "AUTH_APP_CHECK_API_BASE"),
    ({**ON, "AUTH_APP_CHECK_API_BASE": "https://x.example.com/?q=1"}, "AUTH_APP_CHECK_API_BASE"),
    ({**ON, "GCE_METADATA_HOST": "http://metadata.google.internal"}, "GCE_METADATA_HOST"),
    ({**ON, "GCE_METADATA_HOST": "metadata.google.internal/path"}, "GCE_METADATA_HOST"),
    ({**ON, "GCE_METADATA_HOST": "127.0.0.1:port"}, "GCE_METADATA_HOST"),
])
def test_malformed_settings_stop_the_cold_start_naming_the_variable(env, name):
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert str(info.value).startswith(name)


def test_the_google_addresses_are_read_only_when_consuming():
    # a metadata host the runtime itself might set is no concern of a function that never calls it
    assert from_env({**APP, "GCE_METADATA_HOST": "odd/value"}).caller_auth.app_check.consume is False


# ---- pure decisions ------------------------------------------------------------------------

def google_error(status, code, message, reason=None):
    error = {"code": status, "status": code, "message": message}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return json.dumps({"error": error}).encode()


def outcome(result) -> str:
    return "consumed" if isinstance(result, Consumed) else result.rejection.code


@pytest.mark.parametrize("status, body, expected", [
    (200, b"{}", "consumed"),  # first use: Firebase leaves alreadyConsumed out
    (200, b'{"alreadyConsumed": false}', "consumed"),
    (200, b'{"alreadyConsumed": true}', "app_check_replayed"),
    (200, b'{"alreadyConsumed": "true"}', "auth_unavailable"),  # not Firebase's shape: never guessed
    (200, b"<html>", "auth_unavailable"),
    (200, b"[]", "auth_unavailable"),
    (403, google_error(403, "PERMISSION_DENIED", "The provided App Check token is invalid."), "app_check_failed"),
    (403, b"", "app_check_failed"),
    (400, google_error(400, "INVALID_ARGUMENT", "unsupported provider"), "app_check_failed"),
    # the function itself may not call: not the caller's fault, and nobody would get through
    (403, google_error(403, "PERMISSION_DENIED", "Permission 'firebaseappcheck.appCheckTokens.verify' denied",
                       "IAM_PERMISSION_DENIED"), "auth_unavailable"),
    (403, google_error(403, "PERMISSION_DENIED", "Firebase App Check API has not been used in project 1",
                       "SERVICE_DISABLED"), "auth_unavailable"),
    (401, google_error(401, "UNAUTHENTICATED", "invalid credentials"), "auth_unavailable"),
    (429, b"", "auth_unavailable"),
    (500, b"", "auth_unavailable"),
    (503, b"", "auth_unavailable"),
    (302, b"", "auth_unavailable"),
])
def test_firebase_answers_map_onto_the_contract(status, body, expected):
    result = decide(status, body)
    assert outcome(result) == expected
    if expected == "auth_unavailable":
        assert dict(result.rejection.headers)["Retry-After"] == str(token_consume.RETRY_AFTER_SECONDS)


@pytest.mark.parametrize("status, body, expected", [
    (200, b'{"access_token": "ya29.abc", "expires_in": 3599, "token_type": "Bearer"}', AccessToken("ya29.abc", 3599.0)),
    (200, b'{"access_token": "ya29.abc"}', "metadata: no expires_in"),
    (200, b'{"access_token": "", "expires_in": 10}', "metadata: no access_token"),
    (200, b'{"access_token": "a b", "expires_in": 10}', "metadata: no access_token"),
    (200, b'{"access_token": "ya29", "expires_in": true}', "metadata: no expires_in"),
    (200, b"not json", "metadata: no access_token"),
    (404, b"", "metadata: HTTP 404"),
])
def test_metadata_answers(status, body, expected):
    assert access_token_of(status, body) == expected


# ---- the consumer over a scripted fetch ----------------------------------------------------

class Google:
    """Scripted metadata server + Firebase, as the fetch the Consumer is given."""

    def __init__(self):
        self.clock = 1000.0
        self.metadata_calls = 0
        self.verify_calls: list[tuple[dict, bytes]] = []
        self.metadata_delay = 0.0
        self.expires_in = 3599
        self.consumed: set[bytes] = set()
        self.fail_metadata = False

    def now(self) -> float:
        return self.clock

    async def __call__(self, url, *, timeout, max_bytes, method="GET", headers=None, body=None):
        if url.endswith("/default/token"):
            assert headers == {"Metadata-Flavor": "Google"} and method == "GET"
            self.metadata_calls += 1
            await asyncio.sleep(self.metadata_delay)
            if self.fail_metadata:
                raise FetchError(f"GET {url}: ClientConnectorError")
            token = f"ya29.token-{self.metadata_calls}"
            return Fetched(200, {}, json.dumps({"access_token": token, "expires_in": self.expires_in}).encode())
        assert method == "POST"
        self.verify_calls.append((headers, body))
        seen = body in self.consumed
        self.consumed.add(body)
        return Fetched(200, {}, b'{"alreadyConsumed": true}' if seen else b"{}")


def consumer(google: Google) -> Consumer:
    return Consumer(from_env(ON).caller_auth.app_check, google, clock=google.now)


def test_the_access_token_is_cached_until_shortly_before_it_expires():
    google = Google()
    c = consumer(google)

    async def run():
        assert isinstance(await c.consume("t1"), Consumed)
        assert isinstance(await c.consume("t2"), Consumed)
        assert google.metadata_calls == 1
        google.clock += 3599 - token_consume.REFRESH_MARGIN_SECONDS - 1  # still fresh
        await c.consume("t3")
        assert google.metadata_calls == 1
        google.clock += 2  # inside the margin: refreshed before it could expire in flight
        await c.consume("t4")
        assert google.metadata_calls == 2

    asyncio.run(run())
    auth = [headers["Authorization"] for headers, _ in google.verify_calls]
    assert auth == ["Bearer ya29.token-1"] * 3 + ["Bearer ya29.token-2"]
    assert json.loads(google.verify_calls[0][1]) == {"appCheckToken": "t1"}
    assert google.verify_calls[0][0]["Content-Type"] == "application/json"


def test_concurrent_misses_share_one_metadata_fetch_and_replays_are_caught():
    google = Google()
    google.metadata_delay = 0.05
    c = consumer(google)

    async def run():
        return await asyncio.gather(*(c.consume(f"t{i % 4}") for i in range(8)))

    results = asyncio.run(run())
    assert google.metadata_calls == 1
    assert sorted(outcome(r) for r in results) == ["app_check_replayed"] * 4 + ["consumed"] * 4


def test_a_metadata_failure_is_503_and_is_retried_on_the_next_request():
    google = Google()
    google.fail_metadata = True
    c = consumer(google)

    async def run():
        first = await c.consume("t1")
        google.fail_metadata = False
        return first, await c.consume("t1")

    first, second = asyncio.run(run())
    assert outcome(first) == "auth_unavailable" and "metadata" in first.reason
    assert outcome(second) == "consumed"  # never consumed by the failed attempt
    assert google.metadata_calls == 2 and len(google.verify_calls) == 1


def test_the_whole_consumption_is_bounded(monkeypatch):
    monkeypatch.setattr(token_consume, "CONSUME_DEADLINE_SECONDS", 0.2)
    google = Google()
    google.metadata_delay = 5.0  # a metadata server that never answers in time
    c = Consumer(from_env(ON).caller_auth.app_check, google)  # real clock

    result = asyncio.run(c.consume("t1"))
    assert outcome(result) == "auth_unavailable" and "no answer within" in result.reason
    assert google.verify_calls == []


def test_no_reason_ever_carries_a_token():
    google = Google()
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNlY3JldC1wYXJ0"
    c = consumer(google)

    async def run():
        await c.consume(token)
        return await c.consume(token)

    result = asyncio.run(run())
    assert isinstance(result, Refused) and token not in result.reason and "ya29" not in result.reason
