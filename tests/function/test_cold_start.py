"""Where the cold start's work happens (issue 11's import and cold-start figures): importing
main.py (what the gunicorn master does) leaves the HTTP client (pyreqwest) out; the worker imports
it and builds the pooled client at boot, before it accepts a request; the launcher byte-compiles the
source as the deploy's build step does."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

import functions_framework.aio
import main
import token_upstream
from bench import procstat
from function_helpers import API_KEY
from tools.function_server import FunctionServer

MAIN = Path(main.__file__).resolve()
CLIENT_EXTENSION = "pyreqwest/_pyreqwest."  # pyreqwest's Rust extension: mapped once it is imported


def test_importing_main_does_not_import_the_http_client():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import main; "
            "print('token_upstream' in sys.modules, 'pyreqwest' in sys.modules, 'aiohttp' in sys.modules)")
    env = {"PATH": os.environ.get("PATH", ""), "OUTSPEED_API_KEY": API_KEY, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(MAIN.parent)], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["True", "False", "False"], out  # the upstream module is there, its HTTP client is not


def test_lifespan_startup_opens_the_pooled_session_in_the_serving_loop(monkeypatch):
    monkeypatch.setattr(token_upstream, "_session", None)
    app = functions_framework.aio.create_asgi_app(target="token", source=str(MAIN))

    async def lifespan():
        inbox: asyncio.Queue = asyncio.Queue()
        sent: list[str] = []

        async def send(message):
            sent.append(message["type"])

        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       inbox.get, send))
        for _ in range(200):  # bounded: startup is one import and one object
            if sent:
                break
            await asyncio.sleep(0.01)
        opened = token_upstream._session
        opened_in_this_loop = token_upstream._session_loop is asyncio.get_running_loop()
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 10)
        if opened is not None:
            await opened.close()
        return sent, opened, opened_in_this_loop

    sent, opened, opened_in_this_loop = asyncio.run(lifespan())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert opened is not None and opened_in_this_loop


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_worker_loads_the_client_at_boot_and_the_master_never(upstream):
    with FunctionServer({"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url, "THREADS": "2"}) as server:
        deadline = time.monotonic() + 20
        worker = None
        while time.monotonic() < deadline:  # no request sent yet: only the worker's boot can load it
            try:
                worker = procstat.worker_pid(server.process.pid)
                if CLIENT_EXTENSION in _maps(worker):
                    break
            except (OSError, RuntimeError, ValueError):
                pass
            time.sleep(0.05)
        assert worker is not None and CLIENT_EXTENSION in _maps(worker), "the worker booted without the client"
        assert CLIENT_EXTENSION not in _maps(server.process.pid)
        response = requests.post(server.url + "/token", json={"agentId": "agent-1"}, timeout=30)
        assert response.status_code == 200
        assert CLIENT_EXTENSION not in _maps(server.process.pid)
    # the worker shut down cleanly: its client closed without the runtime aborting the exit
    assert "Fatal Python error" not in server.output() and "SIGABRT" not in server.output()


def test_the_launcher_byte_compiles_the_source_with_checked_hashes(tmp_path):
    for module in MAIN.parent.glob("*.py"):
        (tmp_path / module.name).write_bytes(module.read_bytes())
    FunctionServer({"OUTSPEED_API_KEY": API_KEY}, source=tmp_path / "main.py")  # constructed, not started
    pycs = {p.name.split(".")[0]: p for p in (tmp_path / "__pycache__").glob("*.pyc")}
    assert set(pycs) == {p.stem for p in MAIN.parent.glob("*.py")}
    for pyc in pycs.values():
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b11, f"{pyc.name}: not a checked-hash pyc (flags {flags})"
