"""FunctionServer, the launcher shared by the tests, `make run` and `make bench`: what it
starts, it ends, however stuck a part of it is."""
import os
import signal
import time
from pathlib import Path

import requests

from bench import procstat
from tools.function_server import FunctionServer

NOOP = Path(__file__).resolve().parents[2] / "bench" / "noop" / "main.py"


def test_stop_ends_a_stuck_worker_too():
    server = FunctionServer({"THREADS": "2"}, source=NOOP).start()
    try:
        assert requests.post(server.url + "/token", timeout=10).status_code == 200
        worker = procstat.worker_pid(server.process.pid)
        os.kill(worker, signal.SIGSTOP)  # a worker that will never finish a graceful stop
    finally:
        server.stop(grace=1)
    deadline = time.monotonic() + 10  # SIGKILL is prompt; the bound only keeps a failure from hanging
    while procstat.running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procstat.running(worker), "the worker outlived FunctionServer.stop()"
    assert not procstat.running(server.process.pid)
