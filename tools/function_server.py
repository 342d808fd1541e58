"""Run `function/` the way Cloud Functions does: the functions-framework CLI in ASGI mode
(FUNCTION_USE_ASGI=true, as the infra sets it: gunicorn master + one uvicorn worker on uvloop
+ httptools) in a subprocess, on 127.0.0.1.

Shared by the function tests, `make run` and `make bench`, so all three exercise the same
server. The environment is built from scratch (the caller's settings only), so a key in the
developer's shell never leaks into a test; the server's stdout/stderr go to a file that tests
scan for secrets.

    with FunctionServer({"OUTSPEED_API_BASE": upstream.url, "OUTSPEED_API_KEY": "k"}) as fn:
        requests.post(fn.url + "/token", json={"agentId": "a"})
        fn.output()   # everything the server printed so far
"""
from __future__ import annotations

import compileall
import json
import os
import py_compile
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from outspeed_token.settings import SERVER_ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_SOURCE = ROOT / "function" / "main.py"
ENTRY_POINT = "token"
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def compile_source(directory: Path) -> None:
    """Byte-compile the function's directory, as the deploy does: Google's Python buildpack
    runs `python3 -m compileall -f -q .` over the function source at build time (and compiles
    the dependencies too), so a deployed instance never compiles its own modules at cold start.
    The server runs with PYTHONDONTWRITEBYTECODE=1 (nothing else gets written); compiling here,
    before the process starts, keeps source compilation out of the measured start as it is out
    of production's. Checked-hash pycs, so a source a test rewrites within the same second is
    never served from a stale pyc; the directory only (flat modules), not below it. A syntax
    error is left for the server to report, as the build would."""
    compileall.compile_dir(str(directory), maxlevels=0, quiet=2, force=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def log_lines(output: str) -> list[dict]:
    """The structured (JSON) log lines in a server's output; anything else it printed is skipped."""
    lines = []
    for text in output.splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except ValueError:
                pass
    return lines


class StartupError(RuntimeError):
    """The server exited (or never answered) during start-up; the message holds its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FunctionServer:
    def __init__(self, env: dict[str, str] | None = None, *, port: int = 0, host: str = "127.0.0.1",
                 source: Path = FUNCTION_SOURCE, log_path: Path | None = None, inherit_output: bool = False):
        self.port = port or free_port()
        self.host = host
        self.env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        # The server settings the deployed function gets from the infra (ASGI mode, no trusted
        # proxy); a caller may still say FUNCTION_USE_ASGI=false to serve an older, Flask-based
        # source (bench --source).
        self.env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **SERVER_ENVIRONMENT})
        self.env.update(env or {})
        self.source = Path(source)
        compile_source(self.source.parent)  # the build step, outside start()'s timing
        self.inherit_output = inherit_output
        self._log_path = log_path
        self._log = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "functions_framework", "--target", ENTRY_POINT,
                "--source", str(self.source), "--host", self.host, "--port", str(self.port)]

    def start(self, timeout: float = 30.0) -> "FunctionServer":
        if self.inherit_output:
            out = None
        else:
            if self._log_path is None:
                fd, name = tempfile.mkstemp(prefix="function-server-", suffix=".log")
                os.close(fd)
                self._log_path = Path(name)
            self._log = open(self._log_path, "wb")
            out = self._log
        # Its own process group (gunicorn master + worker), so stop() can end both even when
        # the master goes first; the owner (a test, the devserver) decides when it stops.
        self.process = subprocess.Popen(self.command(), env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT if out else None, cwd=ROOT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartupError(f"function server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StartupError(f"function server did not listen within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        """Everything the server has printed (stdout and stderr) so far."""
        if self._log:
            self._log.flush()
        return self._log_path.read_text(errors="replace") if self._log_path else ""

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass  # the whole group is gone already

    def stop(self, grace: float = 10.0) -> None:
        if self.process:
            if self.process.poll() is None:
                self._signal_group(signal.SIGTERM)  # gunicorn's graceful stop
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            # Whatever is left of the group (a worker orphaned by its master) goes too.
            self._signal_group(signal.SIGKILL)
            self.process.wait()
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> "FunctionServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
