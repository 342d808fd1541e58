"""`make smoke` (tools/smoke.py) against real servers over loopback: the function as `make run`
serves it (dev lines, the mint), a local TLS load-balancer stand-in in front of it (prod
lines), and broken variants of both, so each line is seen to pass and to fail."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import pytest

from tools import smoke
from tools.demo_issuer import DemoIssuer
from tools.devserver import AUTH_ENV, demo_auth_env, function_env
from tools.function_server import ROOT, FunctionServer, free_port
from tools.outspeed_standin import OutspeedStandIn

from edge_standin import EdgeStandIn, make_certs  # tests/tools/ is on sys.path (rootdir-less test dir)

DOMAIN = "token.smoke.test"
APP = "app.smoke.test"
PROD_AGENT = "agent-prod"
PROD_STACK = f"""config:
  outspeed-token:authEnabled: true
  outspeed-token:domain: {DOMAIN}
  outspeed-token:allowedHostnames: [{APP}]
  outspeed-token:agentIds: [{PROD_AGENT}]
  outspeed-token:callerAuth:
    idToken:
      issuer: https://issuer.smoke.test
      audience: smoke-audience
"""


def run_smoke(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = smoke.main(list(argv), out=out)
    return code, out.getvalue()


def line(output: str, name: str) -> str:
    """The one result line whose check name starts with `name`."""
    found = [l for l in output.splitlines() if l[:4] in ("PASS", "FAIL", "SKIP") and l[6:].startswith(name)]
    assert len(found) == 1, f"expected one {name!r} line in:\n{output}"
    return found[0]


def stack_root(tmp_path, stack: str, config: str):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(config)
    return tmp_path


# --- dev: the function as `make run` serves it ------------------------------------------------------

@pytest.fixture(scope="module")
def upstream():
    with OutspeedStandIn(api_key="smoke-test-key") as standin:
        yield standin


@pytest.fixture(scope="module")
def dev_function(upstream):
    env, _ = function_env("dev")  # Pulumi.dev.yaml, exactly as `make run` configures it
    env.update(OUTSPEED_API_KEY="smoke-test-key", OUTSPEED_API_BASE=upstream.url)
    with FunctionServer(env) as server:
        yield server


@pytest.fixture
def dev_url(dev_function, upstream):
    upstream.behaviour = "success"
    yield f"http://localhost:{dev_function.port}/token"
    upstream.behaviour = "success"


def test_dev_passes_and_mints_without_printing_the_key(dev_url, upstream):
    before = len(upstream.minted)
    code, out = run_smoke("--stack", "dev", "--url", dev_url, "--agent-id", "agent-smoke")
    assert code == 0, out
    assert line(out, "preflight from http://localhost").startswith("PASS")
    assert line(out, "foreign origin").startswith("PASS")
    assert line(out, "POST without caller credentials").startswith("SKIP")
    assert line(out, "TLS, :80 redirect").startswith("SKIP")
    mint = line(out, "mint for agent agent-smoke")
    assert mint.startswith("PASS") and "client_secret.value present" in mint
    assert len(upstream.minted) == before + 1
    assert all(str(key) not in out for key in upstream.minted), "an ephemeral key was printed"
    assert out.rstrip().endswith("smoke: 3 passed, 0 failed, 2 skipped")


def test_without_an_agent_the_mint_is_skipped_with_the_reason(dev_url):
    code, out = run_smoke("--url", dev_url)
    assert code == 0
    assert "pass --agent-id" in line(out, "mint")


def test_a_failed_mint_is_a_fail_with_the_error_code(dev_url, upstream):
    upstream.behaviour = "401"  # the endpoint's key is rejected upstream
    code, out = run_smoke("--url", dev_url, "--agent-id", "agent-smoke")
    assert code == 1
    assert line(out, "mint for agent").startswith("FAIL  mint for agent agent-smoke: status 502 upstream_auth_failed")


def test_a_stack_that_verifies_callers_expects_401_and_fails_when_served(tmp_path, dev_url):
    # The stack file says callers are verified; the running server (plain dev) does not check.
    root = stack_root(tmp_path, "strict", "config:\n  outspeed-token:authEnabled: false\n"
                                          "  outspeed-token:allowedHostnames: [localhost]\n"
                                          "  outspeed-token:callerAuth:\n    idToken:\n"
                                          "      issuer: https://issuer.smoke.test\n      audience: a\n")
    code, out = run_smoke("--stack", "strict", "--root", str(root), "--url", dev_url)
    assert code == 1
    assert line(out, "POST without caller credentials").startswith("FAIL") and "expected 401" in out


class _AnyOrigin(BaseHTTPRequestHandler):
    """A broken endpoint: 200 with `Access-Control-Allow-Origin: *` to everything."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _any(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"client_secret": {"value": "ek_not_a_real_key"}}).encode()
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_POST = _any


def test_a_server_that_serves_any_origin_fails():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnyOrigin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code, out = run_smoke("--url", f"http://127.0.0.1:{server.server_address[1]}/token", "--agent-id", "a")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert line(out, "preflight").startswith("FAIL") and "expected 204" in out and "Max-Age" in out
    foreign = line(out, "foreign origin")
    assert foreign.startswith("FAIL") and "OPTIONS answered 200" in foreign and "POST answered 200" in foreign
    assert "ek_not_a_real_key" not in out
    assert "failed" in out.splitlines()[-1]


def test_no_answer_at_all_fails_every_line_and_never_crashes():
    code, out = run_smoke("--url", f"http://127.0.0.1:{free_port()}/token", "--timeout", "2")
    assert code == 1
    assert line(out, "preflight").startswith("FAIL") and "ConnectionRefusedError" in out
    assert "Traceback" not in out


# --- where the URL comes from --------------------------------------------------------------------------

def test_without_url_and_without_the_pulumi_cli_it_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` anywhere
    code, out = run_smoke("--stack", "dev")
    assert code == 2
    assert "Pulumi CLI" in out and "--url" in out


def test_it_reads_token_url_from_the_stack_outputs(tmp_path, monkeypatch, dev_url):
    # A `pulumi` on PATH that answers `stack output --json --stack dev` as the CLI would.
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\n"
                    f"[ \"$*\" = 'stack output --json --stack dev' ] || {{ echo \"unexpected: $*\" >&2; exit 3; }}\n"
                    f"echo '{json.dumps({'tokenUrl': dev_url, 'logsUrl': 'x'})}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code, out = run_smoke("--stack", "dev")
    assert code == 0, out
    assert dev_url in out.splitlines()[0]

    fake.write_text("#!/bin/sh\necho 'error: no stack named dev found' >&2\nexit 255\n")
    code, out = run_smoke("--stack", "dev")
    assert code == 2 and "no stack named dev found" in out


# --- prod: a TLS load-balancer stand-in in front of the real function ---------------------------------

@pytest.fixture(scope="module")
def prod(tmp_path_factory, upstream):
    """(stack root, certs, function server, demo issuer): the function configured from a prod
    stack file, with the demo issuer in place of the stack's (unreachable) https issuer."""
    root = stack_root(tmp_path_factory.mktemp("prodstack"), "smokeprod", PROD_STACK)
    certs = make_certs(tmp_path_factory.mktemp("certs"), DOMAIN)
    with DemoIssuer() as issuer:
        env, _ = function_env("smokeprod", root)
        env = {k: v for k, v in env.items() if k not in AUTH_ENV}
        env.update(demo_auth_env(issuer), OUTSPEED_API_KEY="smoke-test-key", OUTSPEED_API_BASE=upstream.url)
        with FunctionServer(env) as server:
            yield root, certs, server, issuer


def prod_smoke(prod, edge: EdgeStandIn, *extra: str) -> tuple[int, str]:
    root, certs, _, issuer = prod
    return run_smoke("--stack", "smokeprod", "--root", str(root), "--url", edge.url,
                     "--resolve", f"{DOMAIN}:127.0.0.1", "--ca-bundle", str(certs.ca),
                     "--http-port", str(edge.http_port), "--timeout", "5", *extra)


def make_edge(prod, **knobs) -> EdgeStandIn:
    _, certs, server, _ = prod
    return EdgeStandIn(DOMAIN, server.url, certs, **knobs)


def test_prod_passes_against_an_edge_like_the_real_one(prod, upstream):
    issuer = prod[3]
    with make_edge(prod) as edge:
        code, out = prod_smoke(prod, edge, "--agent-id", PROD_AGENT, "--id-token", issuer.id_token(sub="smoke"))
    assert code == 0, out
    assert out.splitlines()[0].startswith("smoke: stack smokeprod, prod (load balancer) checks")
    assert line(out, f"preflight from https://{APP}").startswith("PASS")
    assert line(out, "foreign origin").startswith("PASS")
    assert line(out, "POST without caller credentials") == "PASS  POST without caller credentials: 401 unauthenticated"
    assert line(out, "DNS").startswith("SKIP")  # --resolve says where the domain is
    assert line(out, "TLS 1.2+").startswith("PASS  TLS 1.2+: negotiated TLSv1.")
    assert line(out, "TLS 1.1 refused").startswith("PASS")
    assert line(out, "TLS 1.0 refused").startswith("PASS")
    assert line(out, f"http://{DOMAIN}:{edge.http_port} redirect").startswith(f"PASS") and f"308 to https://{DOMAIN}/token" in out
    assert line(out, "unknown Host on https ").startswith("PASS")
    assert line(out, "unknown Host on http ").startswith("PASS")
    assert line(out, f"mint for agent {PROD_AGENT}").startswith("PASS")
    assert all(str(key) not in out for key in upstream.minted)
    assert out.rstrip().endswith("smoke: 10 passed, 0 failed, 1 skipped")


def test_prod_mint_without_a_token_is_skipped_with_the_reason(prod):
    with make_edge(prod) as edge:
        code, out = prod_smoke(prod, edge, "--agent-id", PROD_AGENT)
    assert code == 0
    assert "--id-token" in line(out, "mint for agent")


def test_a_301_redirect_fails(prod):
    with make_edge(prod, redirect_status=301) as edge:
        code, out = prod_smoke(prod, edge)
    assert code == 1
    assert line(out, f"http://{DOMAIN}").startswith("FAIL") and "status 301, expected 308" in out


def test_unknown_hosts_reaching_the_function_fail(prod):
    with make_edge(prod, unknown_host_status=None) as edge:  # no fault-injection default route
        code, out = prod_smoke(prod, edge)
    assert code == 1
    assert line(out, "unknown Host on https ").startswith("FAIL  unknown Host on https")
    assert line(out, "unknown Host on http ").startswith("FAIL")


def test_an_edge_that_still_speaks_tls_1_0_and_1_1_fails(prod):
    with make_edge(prod, tls_min=ssl.TLSVersion.TLSv1) as edge:  # no SSL policy: the proxy's default
        code, out = prod_smoke(prod, edge)
    assert code == 1
    assert line(out, "TLS 1.2+").startswith("PASS")
    assert line(out, "TLS 1.1 refused").startswith("FAIL") and "accepted a TLSv1.1 handshake" in out
    assert line(out, "TLS 1.0 refused").startswith("FAIL") and "accepted a TLSv1 handshake" in out


def test_an_edge_capped_at_tls_1_1_fails(prod):
    with make_edge(prod, tls_min=ssl.TLSVersion.TLSv1, tls_max=ssl.TLSVersion.TLSv1_1) as edge:
        code, out = prod_smoke(prod, edge)
    assert code == 1
    assert line(out, "TLS 1.2+").startswith("FAIL  TLS 1.2+: no verified TLS 1.2+ handshake")
    assert line(out, "TLS 1.1 refused").startswith("FAIL")


def test_a_certificate_the_client_does_not_trust_fails(prod):
    root, _, _, _ = prod
    with make_edge(prod) as edge:
        code, out = run_smoke("--stack", "smokeprod", "--root", str(root), "--url", edge.url,
                              "--resolve", f"{DOMAIN}:127.0.0.1", "--http-port", str(edge.http_port))
    assert code == 1
    assert line(out, "TLS 1.2+").startswith("FAIL") and "certificate not valid" in out


def test_dns_line_compares_the_domain_with_ip_address():
    target = smoke.Target(url="https://localhost/token", edge=True, origin="https://a", allowlist=("a",),
                          verifies_callers=True, ip_address="127.0.0.1")
    assert smoke.check_dns(target).status == "PASS"
    target.ip_address = "203.0.113.9"  # TEST-NET-3: never what localhost resolves to
    result = smoke.check_dns(target)
    assert result.status == "FAIL" and "fix the A record" in result.detail


# --- the Makefile target against `make run`, as CI runs it ---------------------------------------------

def _make(*args: str) -> list[str]:
    # -o: never rebuild the virtualenv from here (CI's `make test` built it; a worktree may use
    # another interpreter); PY=: the interpreter running these tests.
    return ["make", "--no-print-directory", "-o", ".venv/.installed", f"PY={sys.executable}", *args]


def test_make_smoke_passes_against_make_run(upstream):
    port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OUTSPEED_API_KEY", "OUTSPEED_API_BASE")}
    env.update(TOKEN_PORT=str(port), WEB_PORT=str(web_port), PYTHONUNBUFFERED="1")
    run = subprocess.Popen(_make("run"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    banner = []
    try:
        deadline = time.monotonic() + 60
        while not any("Ctrl-C to stop." in l for l in banner):
            assert time.monotonic() < deadline and run.poll() is None, "".join(banner)
            banner.append(run.stdout.readline())
        done = subprocess.run(_make("smoke", "STACK=dev", f"URL=http://localhost:{port}/token", "AGENT=agent-ci"),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  mint for agent agent-ci" in done.stdout
    assert done.stdout.rstrip().endswith("smoke: 3 passed, 0 failed, 2 skipped")


def test_old_tls_that_this_openssl_cannot_offer_is_not_checkable_here(prod, monkeypatch):
    monkeypatch.setattr(ssl, "HAS_TLSv1", False)  # as on a build without TLS 1.0 at all
    with make_edge(prod, tls_min=ssl.TLSVersion.TLSv1) as edge:
        code, out = prod_smoke(prod, edge)
    assert line(out, "TLS 1.0 refused").startswith("SKIP  TLS 1.0 refused: not checkable here")
    assert line(out, "TLS 1.1 refused").startswith("FAIL")  # still offered, and accepted
    assert code == 1


def test_a_malformed_resolve_is_one_clear_line(dev_url):
    code, out = run_smoke("--url", dev_url, "--resolve", "no-address-here")
    assert code == 2 and "expected HOST:ADDRESS" in out and "Traceback" not in out
