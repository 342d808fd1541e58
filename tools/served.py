"""The life cycle the loopback stand-ins share: a socketserver on a daemon thread, started and
stopped explicitly or with `with`."""
from __future__ import annotations

import socketserver
import threading
from typing import Self


class ServedInThread:
    """Mix in, set `self.server`, call `_serve_in_thread` once; then start/stop or `with`."""

    server: socketserver.BaseServer

    def _serve_in_thread(self, name: str, poll_interval: float) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
