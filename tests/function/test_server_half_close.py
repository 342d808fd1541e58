"""Half-closed clients (issue 18, finding 9), on the real server: what uvicorn does today when a
client shuts down its sending side (`shutdown(SHUT_WR)`, as `nc -N` and some proxies do) after
its request. uvicorn (0.54.0, every HTTP implementation it ships) takes that as a disconnect
and closes the connection, and offers no setting to keep it open (Kludex/uvicorn#1264). Pinned
here so an upgrade that changes it shows up; docs/development.md, "How the function is served".
"""
from __future__ import annotations

import json
import socket
import time

from function_helpers import log_lines, own_stack

ORIGIN = "https://app.example.com"
CLIENT_TIMEOUT = 30


def _head(length: int) -> bytes:
    return (f"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _read_to_eof(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _wait_for(condition, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_a_half_close_while_the_upstream_answers_gets_no_answer_though_the_request_runs():
    """The function is waiting on Outspeed when the client half-closes: the connection is closed
    at once without an answer; the request still runs to the end (a key is minted and never
    delivered) and its log line records the answer the function produced."""
    with own_stack(ALLOWED_HOSTNAMES="app.example.com") as (upstream, server):
        upstream.state.held_agents = frozenset({"held-agent"})
        upstream.state.slow_seconds = 10.0  # the longest the held call waits for `release`
        body = json.dumps({"agentId": "held-agent"}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
            sock.sendall(_head(len(body)) + body)
            _wait_for(lambda: upstream.requests, "the function to call the stand-in")
            sock.shutdown(socket.SHUT_WR)  # request sent, nothing more to say: half-close
            received = _read_to_eof(sock)  # uvicorn closes now, or (if it kept the connection) answers
            upstream.state.release.set()
        assert received == b"", f"a half-closed client was answered: {received[:80]!r}"
        _wait_for(lambda: any(line.get("agentId") == "held-agent" for line in log_lines(server)), "the log line")
        line = next(line for line in log_lines(server) if line.get("agentId") == "held-agent")
        assert (line["code"], line["httpRequest"]["status"]) == ("ok", 200)
        assert len(upstream.requests) == 1 and len(upstream.minted) == 1

        # the same request from a client that keeps its side open is answered as ever
        upstream.state.release.clear()
        upstream.state.held_agents = frozenset()
        body = json.dumps({"agentId": "agent-1"}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
            sock.sendall(_head(len(body))[:-2] + b"Connection: close\r\n\r\n" + body)
            assert _read_to_eof(sock).startswith(b"HTTP/1.1 200 ")


def test_a_half_close_before_the_body_is_complete_is_client_closed_request():
    """Half-closed with the body unfinished: the function sees the client go while reading
    the body, logs one WARNING `client_closed_request` (499, never sent), and Outspeed hears
    nothing."""
    with own_stack(ALLOWED_HOSTNAMES="app.example.com") as (upstream, server):
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
            sock.sendall(_head(100) + b'{"agentId": ')  # 12 of the 100 bytes announced
            sock.shutdown(socket.SHUT_WR)
            assert _read_to_eof(sock) == b""
        _wait_for(lambda: log_lines(server), "the log line")
        line = log_lines(server)[-1]
        assert (line["code"], line["httpRequest"]["status"], line["severity"]) == \
            ("client_closed_request", 499, "WARNING")
        assert upstream.requests == []
