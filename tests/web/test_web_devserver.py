"""`make run` (python -m tools.devserver) as a foreground process: what it announces, which
upstream it uses, and that Ctrl-C / SIGTERM stop everything it started."""
from __future__ import annotations

import signal
import socket

import pytest
import requests

from .conftest import DevServer, descendants, stack_root, still_running
from tools.outspeed_standin import OutspeedStandIn


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stops_cleanly_with_every_child(how):
    server = DevServer().start()
    children = descendants(server.process.pid)
    assert len(children) >= 2, f"expected the function server (gunicorn master + worker), got {children}"
    assert _listening(server.port) and _listening(server.web_port)

    if how == "ctrl-c":  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
        server.signal(signal.SIGINT, group=True)
    else:  # e.g. a process manager stopping the devserver alone
        server.signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0, server.output()

    out = server.output()
    assert "devserver: stopped" in out
    assert "Traceback" not in out, out
    assert still_running(children) == [], f"orphans left behind: {still_running(children)}"
    assert not _listening(server.port) and not _listening(server.web_port)


def test_both_localhost_and_127_0_0_1_reach_the_endpoint(devserver):
    for host in ("localhost", "127.0.0.1"):
        answer = requests.post(f"http://{host}:{devserver.port}/token", json={"agentId": "agent-web-test"},
                               headers={"Origin": f"http://localhost:{devserver.web_port}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        page = requests.get(f"http://{host}:{devserver.web_port}/", timeout=10)
        assert page.status_code == 200 and "Get ephemeral key" in page.text
    module = requests.get(f"http://localhost:{devserver.web_port}/getEphemeralKeyFromServer.js", timeout=10)
    assert module.headers["Content-Type"].startswith("text/javascript")  # module scripts need a JS type


def test_with_an_api_key_it_calls_that_api_instead_of_the_stand_in():
    key = "sk-test-" + "x" * 24
    with OutspeedStandIn(api_key=key) as upstream:
        server = DevServer(env={"OUTSPEED_API_KEY": key, "OUTSPEED_API_BASE": upstream.url}).start()
        try:
            out = server.output()
            assert f"OUTSPEED_API_KEY is set: calling the real Outspeed API at {upstream.url}" in out
            assert "stand-in" not in out.split("OUTSPEED_API_KEY is set")[1].split("Ctrl-C")[0]
            answer = requests.post(f"http://localhost:{server.port}/token", json={"agentId": "agent-1"},
                                   headers={"Origin": f"http://localhost:{server.web_port}"}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["client_secret"]["value"] in upstream.minted
            assert upstream.requests[-1].headers["Authorization"] == f"Bearer {key}"
        finally:
            server.stop()
        assert key not in server.output(), "the API key must never be printed"


def test_a_busy_port_is_one_clear_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = DevServer(port=port).run()
    assert done.returncode == 1
    assert f"port {port} (endpoint) is in use" in done.stdout and "TOKEN_PORT" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_config_error_is_one_clear_line(tmp_path):
    root = stack_root(tmp_path, "broken", "config:\n  outspeed-token:allowedHostnames: ['*.example.com']\n")
    done = DevServer("--stack", "broken", "--root", str(root)).run()
    assert done.returncode == 1
    assert "cannot configure the endpoint from the broken stack" in done.stdout
    assert "allowedHostnames" in done.stdout and "wildcard" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
