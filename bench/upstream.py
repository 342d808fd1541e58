"""The bench's Outspeed stand-in: `POST /v1/realtime/sessions` answered after a fixed delay,
in its own process, on an event loop (uvloop + httptools, which the endpoint itself runs on).

Why not tools/outspeed_standin.py (the tests' stand-in, a thread per connection on
http.server): on the bench's 2 cores the stand-in plays a remote API, yet its CPU comes out of
the same two cores as the server under test. The threaded one spends ~0.35 ms of CPU per
answer (two thirds of a core at 1,900 answers/s), which starves whichever server can use more
than one core and caps every column at what the stand-in can answer. This one spends a fraction
of that (`make bench` prints its CPU per request), answers like the real API where the bench
can see it (HTTP/1.1 keep-alive, a fresh session JSON with an ephemeral key per call, 401 for a
wrong key, 404 off the sessions path), and counts the connections it accepted, so connection
reuse by the endpoint is still measured.

In the bench's own process it would share a GIL with the Python load client and the
orchestration; in a child it has its own interpreter, like a real remote API. The parent reads
its connection counter through a pipe.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import threading
from urllib.parse import unquote_plus

from tools.outspeed_standin import SESSIONS_PATH, make_session

_SESSIONS_PATH = SESSIONS_PATH.encode()  # as httptools hands the URL over


def _answer(status: int, reason: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Protocol(asyncio.Protocol):
    """One keep-alive connection: each complete request is answered `delay` seconds later, in
    the order received (HTTP/1.1 pipelining order)."""

    def __init__(self, server: "_Server"):
        import httptools
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.auth = None

    def connection_made(self, transport):
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:
            self.transport.write(_answer(400, "Bad Request", b'{"error":{"message":"bad request"}}'))
            self.transport.close()

    def on_message_begin(self):
        self.url, self.auth = b"", None

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        if name.lower() == b"authorization":
            self.auth = value

    def on_message_complete(self):
        path, _, query = self.url.partition(b"?")
        if path != _SESSIONS_PATH or self.parser.get_method() != b"POST":
            answer = _answer(404, "Not Found", b'{"error":{"message":"no such route"}}')
        elif self.auth != self.server.expected_auth:
            answer = _answer(401, "Unauthorized", b'{"error":{"message":"Invalid API key"}}')
        else:
            agent = None
            for pair in query.split(b"&"):
                if pair.startswith(b"agent_id="):
                    agent = unquote_plus(pair[9:].decode())
            answer = _answer(200, "OK", json.dumps(make_session(agent)).encode())
        self.server.loop.call_later(self.server.delay, self._send, answer)

    def _send(self, answer: bytes):
        if not self.transport.is_closing():
            self.transport.write(answer)


class _Server:
    def __init__(self, delay: float, api_key: str):
        self.delay = delay
        self.expected_auth = f"Bearer {api_key}".encode()
        self.connections = 0
        self.loop = None
        self.port = 0

    async def serve(self, ready: threading.Event):
        import socket
        self.loop = asyncio.get_running_loop()
        server = await self.loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0, backlog=256)
        for sock in server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()


def _serve(conn, delay: float, api_key: str) -> None:
    import uvloop
    server = _Server(delay, api_key)
    ready = threading.Event()
    thread = threading.Thread(target=lambda: uvloop.run(server.serve(ready)), daemon=True)
    thread.start()
    ready.wait(30)
    conn.send(server.port)
    while True:
        command = conn.recv()
        if command == "connections":
            conn.send(server.connections)
        elif command == "stop":
            conn.send(None)
            return


class RemoteStandIn:
    def __init__(self, *, delay: float, api_key: str):
        self._ctx = mp.get_context("spawn")
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, delay, api_key), daemon=True,
                                       name="outspeed-standin")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._proc.pid

    def start(self) -> "RemoteStandIn":
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("stand-in process did not start within 30 s")
        self.port = self._conn.recv()
        return self

    @property
    def connections(self) -> int:
        self._conn.send("connections")
        return self._conn.recv()

    def stop(self) -> None:
        if self._proc.is_alive():
            self._conn.send("stop")
            self._conn.poll(5)
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.terminate()

    def __enter__(self) -> "RemoteStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
