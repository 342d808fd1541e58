"""The Outspeed stand-in (tools/outspeed_standin.py) in its own process for the bench.

In the bench's own process it would share a GIL with the Python load client and the
orchestration; in a child it has its own interpreter, like a real remote API. The parent
still reads its connection counter through a pipe.
"""
from __future__ import annotations

import multiprocessing as mp

from tools.outspeed_standin import OutspeedStandIn


def _serve(conn, delay: float, api_key: str) -> None:
    standin = OutspeedStandIn(api_key=api_key, delay=delay, record=False).start()
    conn.send(standin.port)
    while True:
        command = conn.recv()
        if command == "connections":
            conn.send(standin.connections)
        elif command == "stop":
            standin.stop()
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
