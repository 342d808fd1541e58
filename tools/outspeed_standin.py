"""A loopback stand-in for Outspeed's sessions API (`POST /v1/realtime/sessions`).

One implementation serves the tests (scripted faults, recorded requests), `make run` (the
offline upstream) and `make bench` (a fixed delay). It speaks HTTP/1.1 with keep-alive like
the real API, so connection reuse by the endpoint can be counted.

    with OutspeedStandIn(api_key="test-key") as upstream:
        upstream.behaviour = "429"          # see BEHAVIOURS
        upstream.url                        # http://127.0.0.1:<port>

CLI: python -m tools.outspeed_standin --port 8081 --delay-ms 20 [--api-key KEY]
"""
from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SESSIONS_PATH = "/v1/realtime/sessions"
SESSION_TTL_SECONDS = 60

# name -> what the stand-in answers to a sessions call
BEHAVIOURS = {
    "success": "200 with a fresh session and ephemeral key",
    "401": "401 invalid API key",
    "403": "403 forbidden",
    "404": "404 agent not found",
    "429": "429 with Retry-After (retry_after seconds)",
    "500": "500 internal error",
    "400": "400 bad request",
    "non_json": "200 with an HTML body",
    "no_secret": "200 JSON without client_secret.value",
    "slow": "success after `slow_seconds`",
    "trickle": "success whose body arrives in 8 pieces, `trickle_seconds` apart",
    "nan_json": "200 whose JSON has a NaN (Python accepts it, browsers do not)",
    "drop": "closes the connection without answering",
    "drip_headers": "success whose status line and headers arrive in 8 pieces, `trickle_seconds` apart",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass
class _State:
    behaviour: str = "success"
    delay: float = 0.0
    slow_seconds: float = 5.0
    retry_after: str = "7"
    trickle_seconds: float = 0.5
    content_encoding: str | None = None  # claimed on every answer, body left as is (a broken gzip)
    api_key: str | None = None
    known_agents: frozenset[str] | None = None
    # Calls for these agents wait (before answering, whatever the behaviour) until `release` is
    # set or `slow_seconds` pass: one caller's slow answer while others are served at once.
    held_agents: frozenset[str] = frozenset()
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[RecordedRequest] = field(default_factory=list)
    minted: list[str] = field(default_factory=list)
    connections: int = 0
    open_sockets: set = field(default_factory=set)
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_session(agent_id: str | None, config: dict | None = None) -> dict:
    """A fresh session with a new ephemeral key, as the real API answers (the bench's
    event-loop stand-in, bench/upstream.py, answers the same)."""
    now = int(time.time())
    session = {
        "id": "sess_" + secrets.token_hex(8),
        "object": "realtime.session",
        "model": (config or {}).get("model", "outspeed-v1"),
        "expires_at": now + SESSION_TTL_SECONDS,
        "client_secret": {"value": "ek_" + secrets.token_urlsafe(24), "expires_at": now + SESSION_TTL_SECONDS},
    }
    if agent_id is not None:
        session["agent_id"] = agent_id
    return session


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # read by listen() in the constructor: a burst of 64 connects must not overflow

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer (a load generator ending its run) is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    # Headers and body go out as two writes; with Nagle on, the second waits for the peer's
    # delayed ACK (~40 ms per answer), which would swamp every latency the tests and bench see.
    disable_nagle_algorithm = True
    server_version = "outspeed-standin"
    state: _State  # set per server class

    def setup(self):
        super().setup()
        with self.state.lock:
            self.state.connections += 1
            self.state.open_sockets.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.state.lock:
                self.state.open_sockets.discard(self.connection)

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        pass

    def _send(self, status: int, body: bytes, content_type="application/json", headers=None):
        if self.state.behaviour == "drip_headers":
            return self._send_dripping_headers(status, body, content_type)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.state.content_encoding:
            self.send_header("Content-Encoding", self.state.content_encoding)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.state.behaviour != "trickle":
            self.wfile.write(body)
            return
        step = -(-len(body) // 8)
        for start in range(0, len(body), step):
            self.wfile.write(body[start:start + step])
            self.wfile.flush()
            time.sleep(self.state.trickle_seconds)

    def _send_dripping_headers(self, status: int, body: bytes, content_type: str):
        head = (f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        step = -(-len(head) // 8)
        for start in range(0, len(head), step):
            self.wfile.write(head[start:start + step])
            self.wfile.flush()
            time.sleep(self.state.trickle_seconds)
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers=None):
        self._send(status, json.dumps({"error": {"message": message}}).encode(), headers=headers)

    def do_GET(self):
        if self.path == "/healthz":
            self._send(200, b'{"ok":true}')
        else:
            self._error(404, "not found")

    def do_POST(self):
        st = self.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if st.record:
            with st.lock:
                st.requests.append(RecordedRequest("POST", parts.path, query, dict(self.headers.items()), body))
        if st.delay:
            time.sleep(st.delay)
        if parts.path != SESSIONS_PATH:
            return self._error(404, "no such route")
        if st.api_key is not None and self.headers.get("Authorization") != f"Bearer {st.api_key}":
            return self._error(401, "Invalid API key")

        behaviour = st.behaviour
        if behaviour == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if behaviour == "slow":
            time.sleep(st.slow_seconds)
        agent_id = query.get("agent_id", [None])[0]
        if agent_id in st.held_agents:
            st.release.wait(st.slow_seconds)
        if behaviour in {"401", "403", "404", "500", "400"}:
            return self._error(int(behaviour), f"scripted {behaviour}")
        if behaviour == "429":
            return self._error(429, "rate limited", headers={"Retry-After": st.retry_after})
        if behaviour == "non_json":
            return self._send(200, b"<html>gateway page</html>", content_type="text/html")
        if behaviour == "nan_json":
            return self._send(200, b'{"client_secret": {"value": "ek_nan"}, "temperature": NaN}')
        if behaviour == "no_secret":
            return self._send(200, json.dumps({"id": "sess_x", "client_secret": {}}).encode())
        if st.known_agents is not None and agent_id is not None and agent_id not in st.known_agents:
            return self._error(404, "agent not found")
        try:
            config = json.loads(body) if body else None
        except ValueError:
            return self._error(400, "body is not JSON")
        session = make_session(agent_id, config if isinstance(config, dict) else None)
        if st.record:
            with st.lock:
                st.minted.append(session["client_secret"]["value"])
        self._send(200, json.dumps(session).encode())


class OutspeedStandIn:
    """A real HTTP server on 127.0.0.1 in a background thread; stop() and start() again reuse the port."""

    def __init__(self, port: int = 0, *, api_key: str | None = None, delay: float = 0.0,
                 known_agents=None, record: bool = True):
        self.port = port
        self.state = _State(api_key=api_key, delay=delay, record=record,
                            known_agents=frozenset(known_agents) if known_agents is not None else None)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # scripted behaviour, settable while serving
    @property
    def behaviour(self) -> str:
        return self.state.behaviour

    @behaviour.setter
    def behaviour(self, name: str) -> None:
        if name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {name!r}; one of {sorted(BEHAVIOURS)}")
        self.state.behaviour = name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def minted(self) -> list[str]:
        with self.state.lock:
            return list(self.state.minted)

    @property
    def connections(self) -> int:
        return self.state.connections

    def reset(self) -> None:
        with self.state.lock:
            self.state.requests.clear()
            self.state.minted.clear()
            self.state.connections = 0
        self.state.behaviour = "success"
        self.state.content_encoding = None
        self.state.held_agents = frozenset()
        self.state.release.set()  # let any held call go before the next test
        self.state.release = threading.Event()

    def start(self) -> "OutspeedStandIn":
        handler = type("Handler", (_Handler,), {"state": self.state})
        server = _Server(("127.0.0.1", self.port), handler)
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"standin-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # A stopped server also drops the keep-alive connections it still holds, as a real
        # one going away would; otherwise pooled clients would keep being answered.
        with self.state.lock:
            sockets = list(self.state.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "OutspeedStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Loopback stand-in for Outspeed's sessions API.")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay before every answer")
    parser.add_argument("--api-key", default=None, help="require this bearer key (401 otherwise)")
    parser.add_argument("--behaviour", default="success", choices=sorted(BEHAVIOURS))
    args = parser.parse_args(argv)
    standin = OutspeedStandIn(args.port, api_key=args.api_key, delay=args.delay_ms / 1000, record=False)
    standin.behaviour = args.behaviour
    standin.start()
    print(f"outspeed stand-in listening on {standin.url} (behaviour {args.behaviour}, "
          f"delay {args.delay_ms:g} ms)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
