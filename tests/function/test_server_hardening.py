"""Server-level findings of the security review (issue 9 items 2, 3, 4, 8, 9) and issue 11's
"nothing blocks the event loop", against the real functions-framework CLI in ASGI mode.

Each test here fails against the Flask/gthread function of commit 6ea5ff7: run it with
TOKEN_FUNCTION_SOURCE=<old checkout>/function/main.py to serve that source instead (the
variable also switches FUNCTION_USE_ASGI off, as that source is a Flask function).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from bench import procstat
from function_helpers import API_KEY, error_of, log_lines
from tools.function_server import FUNCTION_SOURCE, FunctionServer
from tools.outspeed_standin import OutspeedStandIn

THREADS = 4
UPSTREAM_TIMEOUT = 2.0
MIB = 1 << 20
CLIENT_TIMEOUT = 30


@contextmanager
def stack(**env: str):
    source = os.environ.get("TOKEN_FUNCTION_SOURCE")
    extra = {"FUNCTION_USE_ASGI": "false"} if source else {}
    upstream = OutspeedStandIn(api_key=API_KEY).start()
    server = FunctionServer({"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url,
                             "ALLOWED_HOSTNAMES": "app.example.com", "THREADS": str(THREADS),
                             "UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT), **extra, **env},
                            source=Path(source) if source else FUNCTION_SOURCE)
    try:
        server.start()
        yield upstream, server
    finally:
        server.stop(grace=3)
        upstream.stop()


@pytest.fixture(scope="module")
def served():
    with stack() as pair:
        yield pair


@pytest.fixture
def upstream(served):
    standin = served[0]
    standin.reset()
    yield standin
    standin.reset()


def worker_of(server) -> int:
    """The worker, once the master has forked it (it listens before it forks)."""
    deadline = time.monotonic() + 10
    while not procstat.children(server.process.pid):
        assert time.monotonic() < deadline, "no worker forked"
        time.sleep(0.05)
    return procstat.worker_pid(server.process.pid)


def post(server, agent_id: str, **kwargs) -> requests.Response:
    return requests.post(server.url + "/token", json={"agentId": agent_id}, timeout=CLIENT_TIMEOUT,
                         headers={"Origin": "https://app.example.com"}, **kwargs)


def raw_exchange(server, data: bytes, timeout: float = CLIENT_TIMEOUT) -> bytes:
    """Send raw bytes, read until the server closes or answers one response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


# ---- issue 11 item 4: one slow upstream answer does not stall anyone else --------------

def test_a_slow_upstream_answer_does_not_stall_another_request(served, upstream):
    _, server = served
    upstream.state.held_agents = frozenset({"agent-slow"})
    upstream.state.slow_seconds = 20  # held until released below (this bounds it if never)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, server, "agent-slow")
        deadline = time.monotonic() + 10
        while not any(r.query.get("agent_id") == ["agent-slow"] for r in upstream.requests):
            assert time.monotonic() < deadline and not slow.done(), "the slow call never reached the stand-in"
            time.sleep(0.02)
        # A is now pending at the stand-in; B is served in full while A still waits.
        fast = post(server, "agent-fast")
        assert fast.status_code == 200 and fast.json()["client_secret"]["value"]
        assert not slow.done(), "the fast request was only answered after the slow one"
        upstream.state.release.set()
        assert slow.result(timeout=CLIENT_TIMEOUT).status_code == 200


# ---- issue 9 item 3: the upstream deadline covers the whole answer ----------------------

@pytest.mark.parametrize("behaviour", ["trickle", "drip_headers"])
def test_the_upstream_deadline_holds_for_a_trickling_answer(served, upstream, behaviour):
    _, server = served
    upstream.behaviour = behaviour
    upstream.state.trickle_seconds = 1.5  # 8 pieces: the whole answer would take 12 s
    started = time.monotonic()
    response = post(server, "agent-1")
    elapsed = time.monotonic() - started
    assert response.status_code == 504 and error_of(response) == "upstream_timeout"
    assert elapsed < UPSTREAM_TIMEOUT + 1, f"504 after {elapsed:.1f} s, deadline {UPSTREAM_TIMEOUT} s"


# ---- issue 9 item 2: early rejects never buffer the body --------------------------------

EARLY_REJECTS = {
    "403 no Origin": ("POST", "/token", {"Content-Type": "application/json"}),
    "404": ("POST", "/elsewhere", {"Content-Type": "application/json", "Origin": "https://app.example.com"}),
    "405": ("PUT", "/token", {"Content-Type": "application/json", "Origin": "https://app.example.com"}),
    "415": ("POST", "/token", {"Content-Type": "text/plain", "Origin": "https://app.example.com"}),
}
BODY = b"x" * (30 * MIB)


def _send_big(server, method: str, path: str, headers: dict[str, str]) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(BODY)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
        try:
            sock.sendall(head.encode())
            view = memoryview(BODY)
            for start in range(0, len(view), MIB):
                sock.sendall(view[start:start + MIB])
        except OSError:
            pass  # the server may stop reading and close once it has answered
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


@pytest.mark.parametrize("name", list(EARLY_REJECTS))
def test_eight_big_bodies_on_an_early_reject_path_do_not_grow_the_worker(name):
    method, path, headers = EARLY_REJECTS[name]
    with stack() as (_, server):
        worker = worker_of(server)
        for _ in range(3):  # warm: imports, first requests, allocator pools
            requests.request(method, server.url + path, data=b"{}", headers=headers, timeout=CLIENT_TIMEOUT)
        rss_before = procstat.status_kib(worker, "VmRSS")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _send_big(server, method, path, headers), range(8)))
        peak = procstat.status_kib(worker, "VmHWM")
        status = name.split()[0].encode()
        answered = [a for a in answers if a.startswith(b"HTTP/1.1 " + status)]
        assert answered, f"no {name} answer came back: {[a[:60] for a in answers]}"
        grown_mib = (peak - rss_before) / 1024
        print(f"{name}: 8 x 30 MiB bodies, worker peak RSS +{grown_mib:.1f} MiB")
        assert grown_mib <= 16, f"{name}: worker peak RSS grew {grown_mib:.1f} MiB for 8 x 30 MiB bodies"
        # and the server still serves
        assert requests.options(server.url + "/token", headers={"Origin": "https://app.example.com"},
                                timeout=CLIENT_TIMEOUT).status_code == 204


# ---- issue 9 item 4: stalled partial headers do not exhaust the server ------------------

def test_stalled_partial_headers_on_more_connections_than_threads_do_not_hang_the_server(served, upstream):
    _, server = served
    stalled = []
    try:
        for _ in range(THREADS * 4):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")  # and nothing more
            stalled.append(sock)
        time.sleep(0.5)  # let the server take them all in
        response = post(server, "agent-1", )
        assert response.status_code == 200
    finally:
        for sock in stalled:
            sock.close()


# ---- issue 9 item 8: a malformed chunked body is the caller's fault ---------------------

def test_a_malformed_chunked_body_is_a_400_with_no_error_logged(served, upstream):
    _, server = served
    lines_before = len(log_lines(server))
    answer = raw_exchange(server, b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example.com\r\n"
                                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"zz\r\n{\"agentId\": \"agent-1\"}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    time.sleep(0.2)  # the app's own log line (if any) is written as the connection closes
    new = log_lines(server)[lines_before:]
    assert not [line for line in new if line["severity"] == "ERROR"], new
    # the app saw the client go mid-body (uvicorn closed the connection): one WARNING line
    assert [(line["code"], line["severity"]) for line in new] in ([], [("client_closed_request", "WARNING")]), new
    assert "Traceback" not in server.output() and "internal_error" not in server.output()
    assert upstream.requests == []


# ---- issue 9 item 9: a huge request line ------------------------------------------------

def test_an_8_mib_request_line_is_refused_or_answered_and_costs_bounded_memory(served, upstream):
    _, server = served
    worker = worker_of(server)
    rss_before = procstat.status_kib(worker, "VmRSS")
    cpu_before = procstat.cpu_seconds([worker])
    answer = raw_exchange(server, b"GET /" + b"a" * (8 * MIB) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Connection: close\r\n\r\n")
    cpu = procstat.cpu_seconds([worker]) - cpu_before
    grown_mib = (procstat.status_kib(worker, "VmHWM") - rss_before) / 1024
    print(f"8 MiB request line: {answer[:40]!r}, worker CPU {cpu:.2f} s, peak RSS +{grown_mib:.1f} MiB")
    status = answer[9:12]
    assert status in (b"404", b"400", b"414"), answer[:200]
    if status == b"404":  # answered by the contract, the path cut in the log line
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "not_found"
        assert all(len(line["httpRequest"]["requestUrl"]) < 300 for line in log_lines(server))
    assert grown_mib <= 48, f"an 8 MiB request line grew the worker {grown_mib:.1f} MiB"
