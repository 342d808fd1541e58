"""Shared pieces of the function tests (conftest.py holds only the fixtures): the settings
variants, the request helper that remembers every body it sent, the server pool, and the
secret scan proving that neither the key, nor any ephemeral key the stand-in minted, nor any
request body ever reached a server's output.
"""
from __future__ import annotations

import json
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path

import requests

from tools import function_server
from tools.function_server import FunctionServer, free_port
from tools.outspeed_standin import OutspeedStandIn

FUNCTION_DIR = str(Path(__file__).resolve().parents[2] / "function")
if FUNCTION_DIR not in sys.path:  # the unit tests import the function's flat modules
    sys.path.insert(0, FUNCTION_DIR)

# A distinctive key: if it shows up anywhere it should not, a plain substring search finds it.
API_KEY = "sk-live-" + secrets.token_hex(20)
PROJECT = "proj-test"
SESSION_CONFIG = {"model": "outspeed-v1", "instructions": "server-instructions-" + secrets.token_hex(8),
                  "voice": "sophie", "turn_detection": {"type": "semantic_vad"}}
HTTPS_APP = "https://app.example.com"

# Settings variants, each served by one function server for the whole test session.
VARIANTS = {
    # prod-like: allowlisted https origins and agents, short upstream timeout for the 504 test
    "strict": {"ALLOWED_HOSTNAMES": "app.example.com,localhost", "HTTPS_ORIGINS_ONLY": "true",
               "ALLOWED_AGENT_IDS": "agent-1,agent:2.v_3,agent-x", "UPSTREAM_TIMEOUT_SECONDS": "1"},
    # server-side SessionConfig, any origin but https only, client config refused
    "programmatic": {"SESSION_CONFIG": json.dumps(SESSION_CONFIG), "HTTPS_ORIGINS_ONLY": "true"},
    # dev: localhost origins, client config merged over the server's
    "dev_merge": {"ALLOWED_HOSTNAMES": "localhost", "ALLOW_CLIENT_SESSION_CONFIG": "true",
                  "SESSION_CONFIG": json.dumps(SESSION_CONFIG)},
    # dev, the seed's legacy flow: any origin, the client's config is the whole body
    "dev_client": {"ALLOW_CLIENT_SESSION_CONFIG": "true"},
    # Cloud Functions' execution-id logging: the framework re-parses every stdout line
    "execution_id": {"LOG_EXECUTION_ID": "true"},
    # the secret was never set
    "no_key": {"ALLOWED_HOSTNAMES": "app.example.com", "OUTSPEED_API_KEY": ""},
    # nothing listens at the upstream address
    "dead_upstream": {"OUTSPEED_API_BASE": "dead"},
}


class Api:
    """requests with memory: raw bodies sent (for the secret scan), one keep-alive session."""

    def __init__(self):
        self.http = requests.Session()
        self.sent_bodies: list[bytes] = []

    def request(self, method: str, url: str, *, body=None, raw: bytes | None = None,
                content_type: str | None = "application/json", headers=None, **kwargs) -> requests.Response:
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            self.sent_bodies.append(data)
        if content_type is not None:
            headers.setdefault("Content-Type", content_type)
        return self.http.request(method, url, data=data, headers=headers, timeout=15, **kwargs)

    def post(self, url: str, body=None, **kwargs) -> requests.Response:
        return self.request("POST", url, body=body, **kwargs)


class Servers:
    def __init__(self, upstream: OutspeedStandIn):
        self.upstream = upstream
        self.started: dict[str, FunctionServer] = {}
        self.minted: list[str] = []  # every ephemeral key value of the session

    def env(self, name: str) -> dict[str, str]:
        env = {"OUTSPEED_API_BASE": self.upstream.url, "OUTSPEED_API_KEY": API_KEY,
               "GOOGLE_CLOUD_PROJECT": PROJECT, "THREADS": "4"}
        env.update(VARIANTS[name])
        if env["OUTSPEED_API_BASE"] == "dead":
            env["OUTSPEED_API_BASE"] = f"http://127.0.0.1:{free_port()}"
        return {k: v for k, v in env.items() if v != ""}

    def get(self, name: str) -> FunctionServer:
        if name not in self.started:
            self.started[name] = FunctionServer(self.env(name)).start()
        return self.started[name]

    def stop_all(self) -> None:
        for server in self.started.values():
            server.stop()


def fn_url(server: FunctionServer, path: str = "/token") -> str:
    return server.url + path


def error_of(response: requests.Response) -> str:
    """The contract's error code, after checking the error shape and no-store."""
    assert response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("Content-Type", "").startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    return body["error"]


def log_lines(server: FunctionServer) -> list[dict]:
    """Every structured log line the server printed (anything else it printed is skipped)."""
    return function_server.log_lines(server.output())


def assert_no_secrets(servers: Servers, upstream: OutspeedStandIn, api: Api) -> None:
    minted = servers.minted + upstream.minted
    assert minted, "the scan is only meaningful after keys were minted"
    for name, server in servers.started.items():
        output = server.output()
        assert output, f"{name}: no output captured"
        assert API_KEY not in output, f"{name}: the API key was printed"
        leaked = [value for value in minted if value in output]
        assert not leaked, f"{name}: {len(leaked)} ephemeral key value(s) printed"
        bodies = [body for body in api.sent_bodies if len(body) >= 16 and body in output.encode()]
        assert not bodies, f"{name}: request bodies printed: {bodies[:3]}"
        assert SESSION_CONFIG["instructions"] not in output, f"{name}: session config printed"


@contextmanager
def own_stack(**env: str):
    """A private stand-in and a function server wired to it (for tests that load, break or
    fuzz them and so must not share the session's); yields (upstream, server)."""
    upstream = OutspeedStandIn(api_key=API_KEY).start()
    server = FunctionServer({"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url, **env})
    try:
        server.start()
        yield upstream, server
    finally:
        server.stop()
        upstream.stop()


def run_with_client(coro):
    """Run `coro` in a fresh event loop, closing the process's pooled client before the loop
    ends (the client belongs to the loop that made it)."""
    import asyncio

    import token_upstream

    async def with_cleanup():
        try:
            return await coro
        finally:
            await token_upstream.close()
    return asyncio.run(with_cleanup())
