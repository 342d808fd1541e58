"""Shared pieces of the browser tests: Debian's Chromium, and `make run`'s devserver as a subprocess."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench import procstat
from tools.function_server import ROOT, free_port

# Debian's Chromium by default; CHROMIUM=/path/to/chrome points the tests at another build.
CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "build" / "screenshots"
TEST_AGENT = "agent-web-test"
READY_LINE = "Ctrl-C to stop."


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed: browser tests skipped — apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda msg: page.console_lines.append(msg.text))
    yield page
    context.close()


def descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every live descendant of `pid`."""
    found = {child: procstat.start_time(child) for child in procstat.tree(pid)[1:]}
    return {child: started for child, started in found.items() if started is not None}


def still_running(procs: dict[int, str]) -> list[int]:
    """The pids of `procs` that are still the same, non-zombie process."""
    return [pid for pid, started in procs.items() if procstat.running(pid, started)]


class DevServer:
    """`python -m tools.devserver` (what `make run` runs) in its own session, like a terminal's job."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int = 0):
        self.port, self.web_port = port or free_port(), free_port()
        self.args = ["--port", str(self.port), "--web-port", str(self.web_port), *args]
        self.env = {k: v for k, v in os.environ.items() if k not in ("OUTSPEED_API_KEY", "OUTSPEED_API_BASE")}
        self.env.update(PYTHONUNBUFFERED="1", **(env or {}))
        fd, name = tempfile.mkstemp(prefix="devserver-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}/token"

    def page_url(self, host: str = "localhost", **query: str) -> str:
        from urllib.parse import urlencode

        return f"http://{host}:{self.web_port}/?" + urlencode({"endpoint": self.endpoint, **query})

    def start(self, timeout: float = 60.0) -> "DevServer":
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "tools.devserver", *self.args], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"devserver exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"devserver not ready within {timeout} s:\n{self.output()}")
            time.sleep(0.1)
        return self

    def run(self, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run to completion (for runs that must fail at start-up)."""
        return subprocess.run([sys.executable, "-m", "tools.devserver", *self.args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def banner_url(self, label: str) -> str:
        match = re.search(rf"^\s+{label}\s+(\S+)$", self.output(), re.M)
        assert match, f"no {label!r} line in the banner:\n{self.output()}"
        return match.group(1)

    def signal(self, signum: int, group: bool = False) -> None:
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.signal(signal.SIGINT, group=True)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def stack_root(tmp: Path, stack: str, config: str) -> Path:
    """A directory holding the project's Pulumi.yaml and a stack file with `config` (YAML)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp / "Pulumi.yaml")
    (tmp / f"Pulumi.{stack}.yaml").write_text(config)
    return tmp


def local_devserver(tmp_path_factory, stack: str, *args: str) -> "DevServer":
    """The devserver (started) on free ports with a stack that allows only the `localhost`
    origin and one agent; `args` are extra devserver flags (e.g. "--auth", "demo")."""
    root = stack_root(tmp_path_factory.mktemp("stack"), stack, (
        "config:\n"
        "  outspeed-token:authEnabled: false\n"
        "  outspeed-token:allowedHostnames: [localhost]\n"
        f"  outspeed-token:agentIds: [{TEST_AGENT}]\n"
    ))
    return DevServer("--stack", stack, "--root", str(root), *args).start()


@pytest.fixture(scope="module")
def devserver(tmp_path_factory):
    server = local_devserver(tmp_path_factory, "webtest")
    yield server
    server.stop()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
