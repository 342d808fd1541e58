"""Debian's `redis-server` on a free loopback port, for the quota tests, `make run QUOTAS=demo`
and `make bench`: no persistence, its files in a temporary directory, gone when it stops.

    with RedisServer(password="s3cret") as store:
        store.url                 # redis://:s3cret@127.0.0.1:<port>/0
        store.command("KEYS", "*")  # a RESP client in a few lines, for tests and tools

The function reaches it over plain redis:// (allowed for loopback hosts only); production uses
rediss:// with AUTH. Never installed here: CI installs Debian's redis-server.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from tools.function_server import free_port

REDIS_SERVER = "/usr/bin/redis-server"
BIND_HOST = "127.0.0.1"


class RedisServer:
    def __init__(self, *, password: str | None = None, port: int = 0):
        self.port = port or free_port()
        self.password = password
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{BIND_HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        config = [f"port {self.port}", f"bind {BIND_HOST}", "protected-mode yes", 'save ""', "appendonly no",
                  f"dir {self.dir}", "daemonize no", "loglevel warning", "logfile \"\""]
        if self.password:
            config.append(f"requirepass {self.password}")
        (self.dir / "redis.conf").write_text("\n".join(config) + "\n")
        self.process = subprocess.Popen([REDIS_SERVER, str(self.dir / "redis.conf")], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout} s")

    def command(self, *args: str):
        """One command over a fresh connection (AUTH first when a password is set): the reply
        as str / int / list / None. For tests and tools, not for the function."""
        with socket.create_connection((BIND_HOST, self.port), timeout=5) as sock:
            reader = sock.makefile("rb")
            if self.password:
                sock.sendall(_encode(("AUTH", self.password)))
                _read(reader)
            sock.sendall(_encode(args))
            return _read(reader)

    def flush(self) -> None:
        self.command("FLUSHALL")

    def keys(self) -> list[str]:
        return sorted(self.command("KEYS", "*"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _encode(args) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read(reader):
    line = reader.readline()
    if not line:
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read(reader) for _ in range(size)]
    raise OSError(f"unexpected reply {line[:20]!r}")
