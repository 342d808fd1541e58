"""App Check replay protection (`AUTH_APP_CHECK_CONSUME=true`, issue 16) on the real server:
functions-framework subprocesses, the demo issuer signing App Check tokens, and a loopback
stand-in for Firebase's verifyAppCheckToken and the metadata server (tools.appcheck_standin)
that remembers consumed tokens as Firebase does. Every refusal is checked at the Outspeed
stand-in too: nothing refused is ever minted."""
from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from function_helpers import API_KEY, HTTPS_APP, error_of, log_lines
from tools.appcheck_standin import AppCheckStandIn
from tools.demo_issuer import DemoIssuer
from tools.function_server import FunctionServer, StartupError, free_port
from tools.outspeed_standin import OutspeedStandIn

PROJECT = "123456789012"
APP_ID = f"1:{PROJECT}:web:0a1b2c3d"
SENT_TOKENS: list[str] = []  # every App Check token sent: none may ever be printed
SERVERS: list[FunctionServer] = []
STANDINS: list[AppCheckStandIn] = []
# A client-side bound far above the function's own (5 s for metadata + Firebase together) and
# far below the stand-in's scripted slowness: an unbounded wait fails the test as a timeout.
CLIENT_TIMEOUT = 15


class Stack:
    """Outspeed stand-in, demo issuer, Google stand-in, and function servers wired to them."""

    def __init__(self, *, consume: bool = True, **env: str):
        self.upstream = OutspeedStandIn(api_key=API_KEY).start()
        self.issuer = DemoIssuer().start()
        self.google = AppCheckStandIn(PROJECT, issuer=self.issuer).start()
        STANDINS.append(self.google)
        self.env = {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": self.upstream.url, "THREADS": "8",
                    "ALLOWED_HOSTNAMES": "app.example.com", "ALLOWED_AGENT_IDS": "agent-1",
                    "AUTH_APP_CHECK_PROJECT_NUMBER": PROJECT, "AUTH_APP_CHECK_APP_IDS": APP_ID,
                    "AUTH_APP_CHECK_JWKS_URI": self.issuer.jwks_uri,
                    "AUTH_APP_CHECK_CONSUME": "true" if consume else "false",
                    "AUTH_APP_CHECK_API_BASE": self.google.url, "GCE_METADATA_HOST": self.google.metadata_host,
                    **env}
        self.servers: list[FunctionServer] = []
        self.http = requests.Session()
        try:
            self.server = self.add_server()
        except Exception:
            self.stop()
            raise

    def add_server(self, **env: str) -> FunctionServer:
        server = FunctionServer({**self.env, **env})
        SERVERS.append(server)
        self.servers.append(server)
        return server.start()

    def token(self, **claims) -> str:
        # a jti of its own, as Firebase's tokens carry: two tokens signed in the same second differ
        claims.setdefault("jti", secrets.token_hex(8))
        token = self.issuer.app_check_token(PROJECT, APP_ID, **claims)
        SENT_TOKENS.append(token)
        return token

    def post(self, app_check: str | None, *, server: FunctionServer | None = None, body=None) -> requests.Response:
        headers = {"Origin": HTTPS_APP, "Content-Type": "application/json"}
        if app_check is not None:
            headers["X-Firebase-AppCheck"] = app_check
        data = json.dumps(body if body is not None else {"agentId": "agent-1"})
        return self.http.post((server or self.server).url + "/token", data=data, headers=headers,
                              timeout=CLIENT_TIMEOUT)

    def stop(self) -> None:
        self.http.close()
        for server in self.servers:
            server.stop()
        self.google.stop()
        self.issuer.stop()
        self.upstream.stop()


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    yield stack
    stack.stop()


def refused(response: requests.Response, code: str) -> None:
    assert response.status_code == {"auth_unavailable": 503}.get(code, 401), response.text
    assert error_of(response) == code
    assert response.headers["Access-Control-Allow-Origin"] == HTTPS_APP  # page code can read it


def unavailable(response: requests.Response) -> None:
    refused(response, "auth_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


def test_first_use_mints_and_a_replay_is_refused(stack):
    token = stack.token()
    first = stack.post(token)
    assert first.status_code == 200, first.text
    minted = len(stack.upstream.requests)
    replay = stack.post(token)
    refused(replay, "app_check_replayed")
    assert "WWW-Authenticate" not in replay.headers
    assert len(stack.upstream.requests) == minted, "a replayed token reached Outspeed"
    line = log_lines(stack.server)[-1]
    assert line["code"] == "app_check_replayed" and line["severity"] == "WARNING"
    assert line["authProblem"] == "app_check: already_consumed" and line["appId"] == APP_ID
    assert stack.google.consumed(token)


def test_a_replay_on_another_instance_is_caught(stack):
    other = stack.add_server()  # a second instance: its own process, caches and connections
    token = stack.token()
    assert stack.post(token).status_code == 200
    minted = len(stack.upstream.requests)
    refused(stack.post(token, server=other), "app_check_replayed")
    # and the other way round, with a token first seen by the second instance
    token = stack.token()
    assert stack.post(token, server=other).status_code == 200
    refused(stack.post(token), "app_check_replayed")
    assert len(stack.upstream.requests) == minted + 1


def test_the_verify_call_carries_the_metadata_access_token_fetched_once():
    stack = Stack()
    try:
        tokens = [stack.token() for _ in range(12)]
        with ThreadPoolExecutor(6) as pool:  # concurrent first requests: one shared fetch
            statuses = list(pool.map(lambda t: stack.post(t).status_code, tokens))
        statuses += [stack.post(stack.token()).status_code]
        assert statuses == [200] * 13
        assert stack.google.metadata_fetches == 1  # per process, not per request
        assert stack.google.verify_calls == 13
        assert set(stack.google.authorizations) == {f"Bearer {stack.google.access_tokens[0]}"}
    finally:
        stack.stop()


def test_an_invalid_token_at_firebase_is_401_and_mints_nothing(stack):
    token = stack.token()
    stack.google.invalid_tokens.add(token)  # passes the local checks; Firebase says 403
    minted = len(stack.upstream.requests)
    refused(stack.post(token), "app_check_failed")
    assert len(stack.upstream.requests) == minted
    line = log_lines(stack.server)[-1]
    assert line["code"] == "app_check_failed" and line["authProblem"] == "app_check: consume refused (HTTP 403)"


def test_a_request_refused_for_its_body_or_policy_never_burns_the_token(stack):
    token = stack.token()
    calls = stack.google.verify_calls
    assert error_of(stack.post(token, body={"agentId": "bad agent!"})) == "invalid_agent_id"
    assert error_of(stack.post(token, body=["not", "an", "object"])) == "invalid_json"
    assert error_of(stack.post(token, body={"agentId": "someone-elses-agent"})) == "agent_not_allowed"
    assert stack.google.verify_calls == calls and not stack.google.consumed(token)
    assert stack.post(token).status_code == 200  # the caller's token still works, once


def test_a_missing_grant_is_503_not_the_callers_fault(stack):
    stack.google.granted = False
    try:
        response = stack.post(stack.token())
    finally:
        stack.google.granted = True
    unavailable(response)
    line = log_lines(stack.server)[-1]
    assert line["severity"] == "ERROR" and "roles/firebaseappcheck.tokenVerifier" in line["authProblem"]


@pytest.mark.parametrize("service,fault", [("verify", "slow"), ("verify", "outage"),
                                           ("metadata", "slow"), ("metadata", "outage")])
def test_google_slow_or_failing_is_503_in_bounded_time_and_mints_nothing(service, fault):
    stack = Stack()
    try:
        stack.google.slow_seconds = 30.0  # far beyond CLIENT_TIMEOUT: only the function's bound answers
        setattr(stack.google, f"{service}_behaviour", fault)
        token = stack.token()
        unavailable(stack.post(token))
        assert stack.upstream.requests == []
        assert log_lines(stack.server)[-1]["code"] == "auth_unavailable"
        # Google is back: the same token was never consumed and now goes through
        setattr(stack.google, f"{service}_behaviour", "ok")
        if service == "verify" and fault == "slow":
            token = stack.token()  # the slow call may still mark the old one when it finally lands
        assert stack.post(token).status_code == 200
    finally:
        stack.stop()


def test_google_down_is_503_and_mints_nothing():
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    stack = Stack(AUTH_APP_CHECK_API_BASE=f"http://{dead}", GCE_METADATA_HOST=dead)
    try:
        unavailable(stack.post(stack.token()))
        assert stack.upstream.requests == []
        assert "metadata" in log_lines(stack.server)[-1]["authProblem"]
        # the metadata server answers, Firebase does not
        firebase_down = stack.add_server(GCE_METADATA_HOST=stack.google.metadata_host)
        unavailable(stack.post(stack.token(), server=firebase_down))
        assert stack.upstream.requests == []
        assert "firebase" in log_lines(firebase_down)[-1]["authProblem"]
    finally:
        stack.stop()


def test_consume_false_makes_no_call_at_all():
    stack = Stack(consume=False)
    try:
        token = stack.token()
        assert stack.post(token).status_code == 200
        assert stack.post(token).status_code == 200  # replays pass: protection is off
        refused(stack.post(None), "app_check_failed")  # the local checks still apply
        assert (stack.google.metadata_fetches, stack.google.verify_calls) == (0, 0)
    finally:
        stack.stop()


def test_consume_without_app_check_stops_the_cold_start():
    server = FunctionServer({"OUTSPEED_API_KEY": API_KEY, "AUTH_APP_CHECK_CONSUME": "true"})
    with pytest.raises(StartupError) as info:
        server.start()
    server.stop()
    assert "AUTH_APP_CHECK_CONSUME" in str(info.value) and "AUTH_APP_CHECK_PROJECT_NUMBER" in str(info.value)


def test_no_token_ever_reaches_the_output():
    assert SENT_TOKENS and SERVERS
    access_tokens = [t for standin in STANDINS for t in standin.access_tokens]
    assert access_tokens
    for server in SERVERS:
        output = server.output()
        assert output and API_KEY not in output
        for token in SENT_TOKENS + access_tokens:
            for part in token.split("."):
                if len(part) >= 16:
                    assert part not in output, "a token was printed"
