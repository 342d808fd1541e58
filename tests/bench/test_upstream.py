"""bench/upstream.py, the bench's Outspeed stand-in (an event loop in a child process): real
HTTP over loopback, what the bench relies on it for."""
from __future__ import annotations

import http.client
import json
import os
import socket
import time

import pytest

from bench import procstat
from bench.upstream import RemoteStandIn

API_KEY = "test-key-" + "k" * 16
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SESSIONS = "/v1/realtime/sessions"


@pytest.fixture(scope="module")
def standin():
    with RemoteStandIn(delay=0.01, api_key=API_KEY) as server:
        yield server


def request(server: RemoteStandIn, path: str, headers: dict[str, str]) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", path, body=b"", headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        conn.close()


def read_response(sock: socket.socket, buffer: bytes) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response (Content-Length framed) off `sock`: status, JSON body, leftover bytes."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-headers: {buffer!r}"
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (h.split(":", 1) for h in header_lines)}
    length = int(headers["content-length"])
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        buffer += chunk
    return int(status_line.split()[1]), json.loads(buffer[:length]), buffer[length:]


def test_sessions_answers_a_fresh_session_per_call(standin):
    status, content_type, body = request(standin, SESSIONS + "?agent_id=a1", AUTH)
    assert status == 200
    assert content_type == "application/json"
    key = body["client_secret"]["value"]
    assert isinstance(key, str) and key.startswith("ek_") and len(key) > len("ek_")
    assert body["agent_id"] == "a1"
    _, _, again = request(standin, SESSIONS + "?agent_id=a1", AUTH)
    assert again["client_secret"]["value"].startswith("ek_")
    assert again["client_secret"]["value"] != key


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}],
                         ids=["missing", "wrong-key", "no-bearer"])
def test_wrong_or_missing_key_is_401_with_a_json_error(standin, headers):
    status, content_type, body = request(standin, SESSIONS + "?agent_id=a1", headers)
    assert status == 401
    assert content_type == "application/json"
    assert body["error"]["message"]


@pytest.mark.parametrize("path", ["/", "/v1/realtime/session", "/v1/realtime/sessions/x"])
def test_other_paths_are_404(standin, path):
    status, _, body = request(standin, path, AUTH)
    assert status == 404
    assert "error" in body


def test_answer_waits_for_the_configured_delay():
    with RemoteStandIn(delay=0.2, api_key=API_KEY) as slow:
        conn = http.client.HTTPConnection("127.0.0.1", slow.port, timeout=10)
        try:
            conn.connect()  # time the request only, not the connect
            began = time.monotonic()
            conn.request("POST", SESSIONS + "?agent_id=a1", body=b"", headers=AUTH)
            response = conn.getresponse()
            response.read()
            elapsed = time.monotonic() - began
        finally:
            conn.close()
    assert response.status == 200
    assert elapsed >= 0.19


def test_keep_alive_requests_share_one_counted_connection(standin):
    before = standin.connections
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    other = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        keys = set()
        for i in range(5):
            conn.request("POST", f"{SESSIONS}?agent_id=k{i}", body=b"", headers=AUTH)
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200 and body["agent_id"] == f"k{i}"
            assert not response.will_close
            keys.add(body["client_secret"]["value"])
        assert len(keys) == 5
        assert standin.connections - before == 1
        other.request("POST", f"{SESSIONS}?agent_id=other", body=b"", headers=AUTH)
        response = other.getresponse()
        response.read()
        assert response.status == 200
        assert standin.connections - before == 2
    finally:
        conn.close()
        other.close()


def test_pipelined_requests_are_answered_in_order(standin):
    requests = b"".join(
        f"POST {SESSIONS}?agent_id={agent} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Length: 0\r\n\r\n".encode()
        for agent in ("first", "second"))
    with socket.create_connection(("127.0.0.1", standin.port), timeout=10) as sock:
        sock.sendall(requests)  # both written before any answer is read
        status1, body1, rest = read_response(sock, b"")
        status2, body2, rest = read_response(sock, rest)
    assert (status1, body1["agent_id"]) == (200, "first")
    assert (status2, body2["agent_id"]) == (200, "second")
    assert body1["client_secret"]["value"] != body2["client_secret"]["value"]
    assert rest == b""


def test_garbage_request_line_is_400_and_closes_the_connection(standin):
    with socket.create_connection(("127.0.0.1", standin.port), timeout=10) as sock:
        sock.sendall(b"\x00\x01 not http at all\r\n\r\n")
        status, body, rest = read_response(sock, b"")
        assert status == 400
        assert "error" in body
        assert rest == b""
        assert sock.recv(65536) == b""  # EOF: closed by the stand-in (left open, recv would time out)


def test_stop_ends_the_child_process():
    server = RemoteStandIn(delay=0.01, api_key=API_KEY).start()
    pid = server.pid
    try:
        assert procstat.running(pid)
        assert request(server, SESSIONS, AUTH)[0] == 200
    finally:
        server.stop()
    assert not procstat.running(pid)  # gone (reaped), not a zombie
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
