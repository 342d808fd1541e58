"""The spend ceiling on the real server (functions-framework subprocess, real HTTP) against a
real `redis-server` started here on a free loopback port with a password: per-caller and
global budgets, several windows, two processes sharing one budget, reservations given back,
early refusals that take nothing, window reset, a store that cannot answer (fail closed and
fail open), a wrong password that is never printed, key names without subjects, anonymous
callers, and bad budget specs stopping the cold start."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from function_helpers import API_KEY, FUNCTION_DIR, HTTPS_APP, error_of, log_lines
from tools.demo_issuer import DemoIssuer
from tools.function_server import FunctionServer, StartupError, free_port
from tools.outspeed_standin import OutspeedStandIn
from tools.redis_server import RedisServer

PASSWORD = "store-pw-" + os.urandom(8).hex()
AGENT = {"agentId": "agent-1"}
SERVERS: list[FunctionServer] = []


@pytest.fixture(scope="module")
def store():
    with RedisServer(password=PASSWORD) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_store(request, store):
    store.flush()
    yield


@pytest.fixture(scope="module")
def issuer():
    with DemoIssuer() as demo:
        yield demo


@pytest.fixture(scope="module")
def upstream():
    with OutspeedStandIn(api_key=API_KEY) as standin:
        yield standin


@pytest.fixture(autouse=True)
def fresh_upstream(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


class Silent:
    """A TCP listener that accepts and never answers: a store that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def silent():
    listener = Silent()
    yield listener
    listener.close()


def start(upstream: OutspeedStandIn, issuer: DemoIssuer | None, **env: str) -> FunctionServer:
    full = {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url, "THREADS": "8",
            "ALLOWED_HOSTNAMES": "app.example.com", "UPSTREAM_TIMEOUT_SECONDS": "1", **env}
    if issuer is not None:
        full.update(AUTH_ID_TOKEN_ISSUER=issuer.issuer, AUTH_ID_TOKEN_AUDIENCE=issuer.audience)
    server = FunctionServer(full)
    SERVERS.append(server)
    return server.start()


@pytest.fixture(scope="module")
def main_fn(store, issuer, upstream):
    """Two per caller an hour, six for everyone an hour."""
    server = start(upstream, issuer, QUOTA_REDIS_URL=store.url, QUOTA_PER_CALLER="2/3600", QUOTA_GLOBAL="6/3600",
                   QUOTA_KEY_PREFIX="t-main")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def windows_fn(store, issuer, upstream):
    """Two per caller in any 4 s, three a day."""
    server = start(upstream, issuer, QUOTA_REDIS_URL=store.url, QUOTA_PER_CALLER="2/4,3/86400", QUOTA_KEY_PREFIX="t-win")
    yield server
    server.stop()


def post(server: FunctionServer, token: str | None = None, *, origin: str = HTTPS_APP, body=AGENT,
         content_type: str = "application/json", session: requests.Session | None = None) -> requests.Response:
    headers = {"Origin": origin, "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return (session or requests).post(server.url + "/token", data=json.dumps(body), headers=headers, timeout=30)


def assert_quota_refusal(response: requests.Response, code: str) -> int:
    """The refusal's shape: status, code, CORS with Retry-After exposed; returns Retry-After."""
    assert response.status_code == (429 if code == "quota_exceeded" else 503), response.text
    assert error_of(response) == code
    assert response.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    assert "Retry-After" in [h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def last_line(server: FunctionServer) -> dict:
    return log_lines(server)[-1]


def counters(store: RedisServer) -> dict[str, int]:
    return {key: int(store.command("GET", key)) for key in store.keys()}


# ---- budgets -----------------------------------------------------------------------------

def test_a_caller_gets_its_budget_then_429_with_retry_after(main_fn, issuer, upstream, store):
    alice = issuer.id_token(sub="alice@example.com")
    assert [post(main_fn, alice).status_code for _ in range(2)] == [200, 200]
    refused = post(main_fn, alice)
    assert assert_quota_refusal(refused, "quota_exceeded") <= 3600
    line = last_line(main_fn)
    assert (line["code"], line["quota"], line["subject"], line["agentId"]) == ("quota_exceeded", "caller",
                                                                                "alice@example.com", "agent-1")
    assert "quota" not in log_lines(main_fn)[-2]  # a granted request names no budget
    assert len(upstream.minted) == 2
    # another caller has a budget of its own
    assert post(main_fn, issuer.id_token(sub="bob")).status_code == 200
    # no raw subject in the store: only hashed caller keys and the global key, under the prefix
    keys = store.keys()
    assert keys and all(key.startswith("t-main:quota:") for key in keys)
    assert not [key for key in keys if "alice" in key or "bob" in key or "example" in key]
    assert sorted(counters(store).values()) == [1, 2, 3]  # bob, alice, everyone


def test_the_global_budget_caps_everyone(main_fn, issuer, upstream):
    for user in ("u1", "u2", "u3"):
        token = issuer.id_token(sub=user)
        assert [post(main_fn, token).status_code for _ in range(2)] == [200, 200]
    refused = post(main_fn, issuer.id_token(sub="u4"))
    assert assert_quota_refusal(refused, "quota_exceeded") <= 3600
    assert last_line(main_fn)["quota"] == "global"
    assert len(upstream.minted) == 6


def test_requests_refused_earlier_take_nothing(main_fn, issuer, upstream, store):
    carol = issuer.id_token(sub="carol")
    early = [
        post(main_fn, carol, body={"agentId": "bad agent!"}),  # field format
        post(main_fn, carol, body=["not", "an", "object"]),  # JSON
        post(main_fn, carol, content_type="text/plain"),  # content type
        post(main_fn, carol, origin="https://evil.example.net"),  # origin
        post(main_fn, None),  # no credentials
        post(main_fn, issuer.id_token(sub="carol", lifetime=-3600)),  # expired
        post(main_fn, carol, body={"agentId": "agent-1", "instructions": "x"}),  # policy
    ]
    assert [r.status_code for r in early] == [400, 400, 415, 403, 401, 401, 400]
    assert store.keys() == [] and upstream.requests == []
    assert [post(main_fn, carol).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("behaviour, status", [("500", 502), ("slow", 504), ("drop", 502), ("no_secret", 502),
                                               ("429", 429)])
def test_a_failed_mint_gives_its_reservation_back(main_fn, issuer, upstream, store, behaviour, status):
    dave = issuer.id_token(sub="dave")
    upstream.behaviour = behaviour
    upstream.state.slow_seconds = 2.0  # over the server's 1 s upstream timeout
    assert [post(main_fn, dave).status_code for _ in range(3)] == [status] * 3  # more than the budget
    assert set(counters(store).values()) <= {0}
    upstream.behaviour = "success"
    assert [post(main_fn, dave).status_code for _ in range(3)] == [200, 200, 429]


def test_a_store_that_forgot_the_scripts_still_counts(main_fn, issuer, store):
    """A restarted or failed-over store has no scripts cached: the first call sends it whole."""
    store.command("SCRIPT", "FLUSH")
    grace = issuer.id_token(sub="grace")
    assert [post(main_fn, grace).status_code for _ in range(3)] == [200, 200, 429]


def test_anonymous_firebase_users_are_refused_and_take_nothing(main_fn, issuer, upstream, store):
    anonymous = issuer.id_token(sub="anon-1", firebase={"sign_in_provider": "anonymous"})
    refused = post(main_fn, anonymous)
    assert refused.status_code == 403 and error_of(refused) == "anonymous_not_allowed"
    assert refused.headers["Access-Control-Allow-Origin"] == HTTPS_APP
    line = last_line(main_fn)
    assert line["authProblem"] == "id_token: anonymous" and "quota" not in line
    assert upstream.requests == [] and store.keys() == []
    # a signed-in Firebase user is not anonymous
    assert post(main_fn, issuer.id_token(sub="eve", firebase={"sign_in_provider": "password"})).status_code == 200


def test_several_windows_and_a_window_reset(windows_fn, issuer, upstream):
    """Two per 4 s and three a day: the short window refuses and resets, then the day's does."""
    seconds = 4

    def next_window():  # wait for a fresh 4 s window (a behaviour of aligned windows, not a timing check)
        time.sleep(seconds - time.time() % seconds + 0.05)
        return math.floor(time.time() / seconds)

    for attempt in range(3):  # a machine too loaded to send three requests in 4 s tries again
        frank = issuer.id_token(sub=f"frank-{attempt}")
        window = next_window()
        first = [post(windows_fn, frank) for _ in range(3)]
        if math.floor(time.time() / seconds) != window:
            continue
        assert [r.status_code for r in first] == [200, 200, 429]
        assert assert_quota_refusal(first[2], "quota_exceeded") <= seconds
        assert last_line(windows_fn)["quota"] == "caller"
        next_window()
        assert post(windows_fn, frank).status_code == 200  # the short window reset: the third of the day
        refused = post(windows_fn, frank)  # the short window has room, the day's does not
        assert assert_quota_refusal(refused, "quota_exceeded") > seconds
        break
    else:
        pytest.fail("never got three requests into one 4 s window")


def test_two_processes_share_one_budget_under_concurrent_load(store, issuer, upstream):
    """Two instances, one global budget of 10, 40 concurrent requests: exactly 10 keys minted.
    Anonymous callers are allowed on these instances (AUTH_ID_TOKEN_ALLOW_ANONYMOUS=true)."""
    env = dict(QUOTA_REDIS_URL=store.url, QUOTA_GLOBAL="10/86400", QUOTA_KEY_PREFIX="t-shared",
               AUTH_ID_TOKEN_ALLOW_ANONYMOUS="true")
    first, second = start(upstream, issuer, **env), start(upstream, issuer, **env)
    try:
        anonymous = issuer.id_token(sub="anon-2", firebase={"sign_in_provider": "anonymous"})
        upstream.state.delay = 0.05  # mints overlap
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda i: post((first, second)[i % 2], anonymous).status_code, range(40)))
        assert statuses.count(200) == 10 and statuses.count(429) == 30, statuses
        assert len(upstream.minted) == 10
        assert counters(store) == {key: 10 for key in store.keys()} and len(store.keys()) == 1
    finally:
        upstream.state.delay = 0.0
        first.stop()
        second.stop()


# ---- a store that cannot answer ----------------------------------------------------------

def test_a_store_that_hangs_is_503_in_bound_and_mints_nothing(silent, issuer, upstream):
    server = start(upstream, None, QUOTA_REDIS_URL=f"redis://127.0.0.1:{silent.port}", QUOTA_GLOBAL="5/60")
    try:
        with requests.Session() as http:
            # The first request also waits for the worker's boot (which tried the store for 1 s).
            assert_quota_refusal(post(server, session=http), "quota_unavailable")
            for _ in range(2):
                started = time.monotonic()
                response = post(server, session=http)
                assert time.monotonic() - started < 3.0  # the contract's bound (2 s), with room for a loaded CI
                assert_quota_refusal(response, "quota_unavailable")
        assert upstream.requests == []
        line = last_line(server)
        assert (line["code"], line["quota"], line["quotaProblem"]) == ("quota_unavailable", "unavailable", "TimeoutError")
        assert line["severity"] == "ERROR"
    finally:
        server.stop()


def test_fail_open_mints_and_logs_it(issuer, upstream):
    server = start(upstream, None, QUOTA_REDIS_URL=f"redis://127.0.0.1:{free_port()}", QUOTA_GLOBAL="1/60",
                   QUOTA_FAIL_OPEN="true")
    try:
        assert [post(server).status_code for _ in range(3)] == [200, 200, 200]  # over the budget: nothing counts
        assert len(upstream.minted) == 3
        line = last_line(server)
        assert (line["code"], line["quota"], line["quotaProblem"]) == ("ok", "open", "ConnectionError")
    finally:
        server.stop()


def test_a_wrong_password_is_503_and_never_printed(store, upstream):
    wrong = "wrong-pw-" + os.urandom(8).hex()
    server = start(upstream, None, QUOTA_REDIS_URL=store.url.replace(PASSWORD, wrong), QUOTA_GLOBAL="5/60")
    try:
        response = post(server)
        assert_quota_refusal(response, "quota_unavailable")
        assert last_line(server)["quotaProblem"] == "AuthenticationError"
        assert upstream.requests == []
        for text in (server.output(), response.text, str(response.headers)):
            assert wrong not in text and PASSWORD not in text
    finally:
        server.stop()


def test_no_server_ever_printed_the_store_password():
    assert SERVERS
    for server in SERVERS:
        output = server.output()
        assert output and PASSWORD not in output and API_KEY not in output


# ---- cold start and imports --------------------------------------------------------------

@pytest.mark.parametrize("env, name", [
    ({"QUOTA_GLOBAL": "ten/60"}, "QUOTA_GLOBAL"),
    ({"QUOTA_GLOBAL": "5/60", "QUOTA_PER_CALLER": "3/60"}, "QUOTA_PER_CALLER"),  # no ID tokens
])
def test_bad_budgets_stop_the_cold_start_naming_the_variable(store, upstream, env, name):
    with pytest.raises(StartupError) as error:
        start(upstream, None, QUOTA_REDIS_URL=store.url, **env)
    assert name in str(error.value) and PASSWORD not in str(error.value)


def test_redis_is_imported_only_by_a_worker_with_quotas():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import main; print('redis' in sys.modules)")
    base = {"PATH": os.environ.get("PATH", ""), "OUTSPEED_API_KEY": API_KEY, "PYTHONDONTWRITEBYTECODE": "1"}
    for extra in ({}, {"QUOTA_REDIS_URL": "redis://127.0.0.1:1", "QUOTA_GLOBAL": "5/60"}):
        out = subprocess.run([sys.executable, "-c", code, FUNCTION_DIR], env={**base, **extra}, capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        assert out == ["False"], (extra, out)  # neither the no-quota path nor the master imports it
