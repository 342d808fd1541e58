"""`make run`: the token endpoint, its upstream and the example page, in one foreground command.

- the endpoint (function/main.py under functions-framework, via FunctionServer) on
  http://localhost:8080/token, configured from Pulumi.dev.yaml through the outspeed_token package's own
  settings -> function-environment code, so it behaves as the deployed dev stack does;
- with no OUTSPEED_API_KEY in the environment, an embedded OutspeedStandIn as the upstream
  (announced); with one, the real Outspeed API (OUTSPEED_API_BASE overrides the base URL);
- examples/web/ on http://localhost:5173;
- with `--auth demo` (`make run AUTH=demo`): a local OIDC issuer (tools/demo_issuer.py) and the
  endpoint configured to require its ID tokens (AUTH_ID_TOKEN_ISSUER / AUDIENCE, keys found by
  OIDC discovery), so the page's "Sign in (demo)" button is needed to get a key;
- with `--quotas demo` (`make run QUOTAS=demo`): Debian's redis-server on loopback (free port,
  a per-run password, no persistence, a temporary directory) as the quota store, with small
  budgets (DEMO_GLOBAL for everyone, DEMO_PER_CALLER per signed-in caller when ID tokens are
  on), so the page shows a 429 quota_exceeded after a few presses.

Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything and exits 0.

    python -m tools.devserver [--stack dev] [--port 8080] [--web-port 5173] [--auth demo] [--quotas demo]
    TOKEN_PORT=9080 WEB_PORT=9173 make run
    make run AUTH=demo
    make run QUOTAS=demo
"""
from __future__ import annotations

import argparse
import functools
import os
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

from tools.demo_issuer import DemoIssuer
from tools.function_server import ROOT, FunctionServer, StartupError
from tools.outspeed_standin import OutspeedStandIn
from tools.redis_server import RedisServer

WEB_ROOT = ROOT / "examples" / "web"
BIND_HOST = "127.0.0.1"  # loopback only: the endpoint holds an API key; "localhost" resolves here too
DEFAULT_PORT, DEFAULT_WEB_PORT = 8080, 5173
# Variables the developer's shell may set; everything else comes from the stack config.
UPSTREAM_ENV = ("OUTSPEED_API_KEY", "OUTSPEED_API_BASE")


def function_env(stack: str, root: Path = ROOT) -> tuple[dict[str, str], tuple[str, ...]]:
    """The function's environment for `stack` and the config warnings, derived by the infra
    package's own code, exactly as the deployed stack derives them.

    The API key is not part of it (in the cloud it comes from Secret Manager); the caller adds it.
    Raises outspeed_token.settings.ConfigError (one line naming the key and the fix) on bad config.
    """
    from outspeed_token import settings, stackfiles  # pure modules: no Pulumi engine needed

    config = stackfiles.stack_config(stack, root)
    parsed = settings.parse_mapping(stackfiles.project_values(config))
    env = settings.function_environment(parsed, project=str(config.get("gcp:project") or ""))
    return {k: v for k, v in env.items() if v != "" and k != "OUTSPEED_API_KEY"}, parsed.warnings


class _StaticHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".ts": "text/plain", ".html": "text/html"}

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # edits show on reload
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - only failures are worth a line
        if len(args) > 1 and str(args[1]).startswith(("4", "5")):
            sys.stderr.write(f"[web] {self.command} {self.path} -> {args[1]}\n")


class StaticSite:
    """examples/web/ over HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, port: int, directory: Path = WEB_ROOT):
        handler = functools.partial(_StaticHandler, directory=str(directory))
        self.server = ThreadingHTTPServer((BIND_HOST, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="static-site", daemon=True)

    def start(self) -> "StaticSite":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _port_free(port: int) -> bool:
    if port == 0:
        return True
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind((BIND_HOST, port))
        except OSError:
            return False
    return True


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise SystemExit(f"devserver: {name} must be a port number, not {value!r}")
    return int(value)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.devserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack whose config the endpoint uses (default dev)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # tests: a dir with Pulumi.yaml + stack file
    parser.add_argument("--port", type=int, default=_env_port("TOKEN_PORT", DEFAULT_PORT),
                        help="endpoint port (env TOKEN_PORT, default 8080)")
    parser.add_argument("--web-port", type=int, default=_env_port("WEB_PORT", DEFAULT_WEB_PORT),
                        help="example page port (env WEB_PORT, default 5173)")
    parser.add_argument("--auth", choices=("stack", "demo"), default="stack",
                        help="caller authentication: `demo` runs a local ID-token issuer and requires its tokens "
                             "(make run AUTH=demo); default `stack`: whatever the stack's callerAuth says")
    parser.add_argument("--quotas", choices=("stack", "demo"), default="stack",
                        help="mint budgets: `demo` runs a local redis-server with small budgets "
                             "(make run QUOTAS=demo); default `stack`: whatever the stack's quotas say")
    return parser.parse_args(argv)


# Every caller-authentication variable: demo mode replaces whatever the stack config set.
AUTH_ENV = ("AUTH_ID_TOKEN_ISSUER", "AUTH_ID_TOKEN_AUDIENCE", "AUTH_ID_TOKEN_JWKS_URI",
            "AUTH_APP_CHECK_PROJECT_NUMBER", "AUTH_APP_CHECK_APP_IDS", "AUTH_APP_CHECK_JWKS_URI")


# Every quota variable: demo mode replaces whatever the stack config set.
QUOTA_ENV = ("QUOTA_REDIS_URL", "QUOTA_REDIS_CA_CERT", "QUOTA_PER_CALLER", "QUOTA_GLOBAL", "QUOTA_FAIL_OPEN",
             "QUOTA_KEY_PREFIX")
# Small enough to see a 429 after a few presses of the page's button.
DEMO_GLOBAL, DEMO_PER_CALLER = "3/60", "2/60"


def demo_quota_env(store: RedisServer, per_caller: bool) -> dict[str, str]:
    """The endpoint's environment for the local store: a global budget, and a per-caller one
    where callers have verified identities."""
    env = {"QUOTA_REDIS_URL": store.url, "QUOTA_GLOBAL": DEMO_GLOBAL, "QUOTA_KEY_PREFIX": "outspeed-token-demo"}
    if per_caller:
        env["QUOTA_PER_CALLER"] = DEMO_PER_CALLER
    return env


def demo_auth_env(issuer: DemoIssuer) -> dict[str, str]:
    """The endpoint's environment for the demo issuer: ID tokens required, keys by discovery."""
    return {"AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_AUDIENCE": issuer.audience}


def main(argv=None) -> int:
    args = parse_args(argv)
    stopping = threading.Event()

    def request_stop(signum, frame):
        stopping.set()  # no exception: it could land mid-Popen and orphan a child; the loops below poll

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)

    def say(line: str = "") -> None:
        print(line, flush=True)

    standin = site = fn = issuer = store = None
    code = 0
    try:
        try:
            env, warnings = function_env(args.stack, args.root)
        except Exception as exc:  # a config error is the user's to fix: one line, no traceback
            say(f"devserver: cannot configure the endpoint from the {args.stack} stack: {exc}")
            return 1
        for warning in warnings:
            say(f"warning: {warning}")
        for name, port, flag in (("endpoint", args.port, "TOKEN_PORT"), ("example page", args.web_port, "WEB_PORT")):
            if not _port_free(port):
                say(f"devserver: port {port} ({name}) is in use, perhaps by another `make run`; "
                    f"choose another with {flag}=<port>")
                return 1

        if os.environ.get("OUTSPEED_API_KEY"):
            env["OUTSPEED_API_KEY"] = os.environ["OUTSPEED_API_KEY"]
            if os.environ.get("OUTSPEED_API_BASE"):
                env["OUTSPEED_API_BASE"] = os.environ["OUTSPEED_API_BASE"]
            upstream = env.get("OUTSPEED_API_BASE", "https://api.outspeed.com")
            say(f"OUTSPEED_API_KEY is set: calling the real Outspeed API at {upstream}")
        else:
            # The stand-in checks a per-run key, so the endpoint's Authorization header is exercised.
            key = "standin-" + secrets.token_urlsafe(16)
            standin = OutspeedStandIn(api_key=key, record=False).start()
            env.update(OUTSPEED_API_KEY=key, OUTSPEED_API_BASE=standin.url)
            upstream = f"local stand-in {standin.url}"
            say(f"no OUTSPEED_API_KEY: using the local Outspeed stand-in at {standin.url} "
                "(its keys are fake; export OUTSPEED_API_KEY=... to call the real API)")

        if args.auth == "demo":
            issuer = DemoIssuer().start()
            env = {k: v for k, v in env.items() if k not in AUTH_ENV}
            env.update(demo_auth_env(issuer))

        if args.quotas == "demo":
            store = RedisServer(password=secrets.token_urlsafe(16)).start()
            env = {k: v for k, v in env.items() if k not in QUOTA_ENV}
            env.update(demo_quota_env(store, per_caller="AUTH_ID_TOKEN_ISSUER" in env))
        elif "QUOTA_REDIS_URL" not in env and any(k in env for k in QUOTA_ENV):
            # The stack's store (Memorystore, or its secret URL) is not reachable from here.
            env = {k: v for k, v in env.items() if k not in QUOTA_ENV}
            say("the stack's quotas need its store: running without budgets (make run QUOTAS=demo for a local one)")

        fn = FunctionServer(env, port=args.port, host=BIND_HOST, inherit_output=True)
        try:
            fn.start()
        except StartupError as exc:
            if not stopping.is_set():
                say(f"devserver: the endpoint did not start:\n{exc}")
                code = 1
            return code
        site = StaticSite(args.web_port).start()

        endpoint = f"http://localhost:{fn.port}/token"
        query = {}
        if fn.port != DEFAULT_PORT:
            query["endpoint"] = endpoint
        agents = [a for a in env.get("ALLOWED_AGENT_IDS", "").split(",") if a]
        if agents:
            query["agentId"] = agents[0]
        if issuer is not None:
            query["issuer"] = issuer.url  # the page shows "Sign in (demo)" and signs in there
        page = f"http://localhost:{site.port}/" + (f"?{urlencode(query, safe=':/')}" if query else "")
        origins = env.get("ALLOWED_HOSTNAMES") or "any"
        say("")
        say(f"outspeed-token dev server ({args.stack} stack config; allowed hostnames: {origins})")
        say(f"  token endpoint  {endpoint}")
        say(f"  example page    {page}")
        say(f"  Outspeed API    {upstream}")
        if issuer is not None:
            say(f"  demo issuer     {issuer.url}")
            say("Callers need an ID token of the demo issuer: press \"Sign in (demo)\" on the example page.")
        elif "AUTH_ID_TOKEN_ISSUER" in env or "AUTH_APP_CHECK_PROJECT_NUMBER" in env:
            say("  callers         must send the stack's callerAuth tokens (make run AUTH=demo for a local issuer)")
        if store is not None:
            budgets = f"global {env['QUOTA_GLOBAL']}" + (f", per caller {env['QUOTA_PER_CALLER']}"
                                                         if "QUOTA_PER_CALLER" in env else "")
            say(f"  quota store     redis-server on 127.0.0.1:{store.port} (budgets COUNT/SECONDS: {budgets})")
        say("Ctrl-C to stop.")

        while not stopping.is_set():
            if fn.process.poll() is not None:
                say(f"devserver: the endpoint exited with status {fn.process.returncode}; stopping")
                code = 1
                break
            time.sleep(0.2)
    finally:
        # A second Ctrl-C during shutdown must not cut the cleanup short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        for part in (fn, site, standin, issuer, store):
            if part is not None:
                part.stop()
        if stopping.is_set():
            say("devserver: stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
