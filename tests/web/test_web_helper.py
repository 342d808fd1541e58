"""The copyable TypeScript helper and its plain-JS twin (the one the page uses): type-checked by
tsc, the same error codes as the endpoint, and the same behaviour in a real browser."""
from __future__ import annotations

import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import TEST_AGENT
from tools.function_server import ROOT

WEB = ROOT / "examples" / "web"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
NO_TSC = "TypeScript not installed: type check skipped — npm ci"
NO_TSC_TWINS = "TypeScript not installed: TS-vs-JS helper browser tests skipped — npm ci"


def _codes(path) -> list[str]:
    block = re.search(r"ENDPOINT_ERROR_CODES = [^\[]*\[(.*?)\]", path.read_text(), re.S)
    return re.findall(r'"([a-z_]+)"', block.group(1))


def test_helpers_know_exactly_the_endpoints_error_codes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "function"))
    from token_policy import ERRORS

    for twin in ("getEphemeralKeyFromServer.ts", "getEphemeralKeyFromServer.js"):
        assert sorted(_codes(WEB / twin)) == sorted(ERRORS), twin


@pytest.fixture(scope="module")
def tsc():
    if not TSC.exists():
        pytest.skip(NO_TSC)
    return str(TSC)


def test_typescript_helper_and_page_type_check(tsc):
    # strict, and the JS files too (checkJs): see examples/web/tsconfig.json
    done = subprocess.run([tsc, "-p", str(WEB)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def compiled_ts(tmp_path_factory):
    if not TSC.exists():
        pytest.skip(NO_TSC_TWINS)
    out = tmp_path_factory.mktemp("tsc")
    done = subprocess.run([str(TSC), "--outDir", str(out), "--target", "ES2020", "--module", "ES2020", "--strict",
                           "--lib", "ES2020,DOM", str(WEB / "getEphemeralKeyFromServer.ts")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "getEphemeralKeyFromServer.js").read_text()


RUN_CASES = """async ({ module, cases }) => {
  const m = await import(module);
  const out = [];
  for (const c of cases) {
    const options = { endpoint: c.endpoint };
    if ("idToken" in c) options.getIdToken = async () => c.idToken;
    if ("appCheckToken" in c) options.getAppCheckToken = async () => c.appCheckToken;
    try {
      const key = await m.requestEphemeralKey(c.agentId, options);
      out.push({ ok: true, value: typeof key.value, expiresAt: typeof key.expiresAt,
                 helper: (await m.getEphemeralKeyFromServer(c.agentId, options)).length > 0 });
    } catch (e) {
      out.push({ ok: false, typed: e instanceof m.EphemeralKeyError, name: e.name, code: e.code,
                 status: e.status, message: e.message, retryAfter: e.retryAfter ?? null });
    }
  }
  return out;
}"""


def test_ts_helper_and_js_twin_behave_the_same_in_the_browser(devserver, page, compiled_ts):
    origin = f"http://localhost:{devserver.web_port}"
    page.route(f"{origin}/__ts__/helper.js", lambda route: route.fulfill(body=compiled_ts, content_type="text/javascript"))
    # Answers no local endpoint gives on demand, faked on the page's own origin (so no CORS involved).
    page.route(f"{origin}/fake/rate-limited", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "7"}, content_type="application/json",
        body=json.dumps({"error": "upstream_rate_limited", "message": "Outspeed is rate limiting."})))
    page.route(f"{origin}/fake/proxy-error", lambda route: route.fulfill(
        status=502, content_type="application/json", body=json.dumps({"error": "Bad Gateway"})))
    page.route(f"{origin}/fake/no-secret", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"id": "sess_1", "client_secret": {}})))
    # Caller authentication: an endpoint that wants credentials, and records what it was sent.
    sent: list[dict] = []

    def authenticated(route):
        headers = route.request.headers
        sent.append({"authorization": headers.get("authorization"), "appcheck": headers.get("x-firebase-appcheck")})
        if headers.get("authorization") != "Bearer id.token.value":
            route.fulfill(status=401, headers={"WWW-Authenticate": 'Bearer realm="outspeed-token"'},
                          content_type="application/json",
                          body=json.dumps({"error": "unauthenticated", "message": "Sign in first."}))
        elif headers.get("x-firebase-appcheck") != "app.check.value":
            route.fulfill(status=401, content_type="application/json",
                          body=json.dumps({"error": "app_check_failed", "message": "Not a verified app."}))
        else:
            route.fulfill(status=200, content_type="application/json",
                          body=json.dumps({"client_secret": {"value": "ek_fake", "expires_at": 1}}))
    page.route(f"{origin}/fake/authenticated", authenticated)
    page.route(f"{origin}/fake/auth-unavailable", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "5"}, content_type="application/json",
        body=json.dumps({"error": "auth_unavailable", "message": "Caller verification is unavailable."})))
    page.goto(devserver.page_url())

    endpoint = devserver.endpoint
    cases = [
        ({"agentId": TEST_AGENT, "endpoint": endpoint}, {"ok": True}),
        ({"agentId": "someone-elses-agent", "endpoint": endpoint}, {"code": "agent_not_allowed", "status": 403}),
        ({"agentId": "bad agent!", "endpoint": endpoint}, {"code": "invalid_agent_id", "status": 400}),
        ({"agentId": TEST_AGENT, "endpoint": endpoint.replace("/token", "/nope")}, {"code": "not_found", "status": 404}),
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/rate-limited"},
         {"code": "upstream_rate_limited", "status": 429, "retryAfter": 7}),
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/no-secret"}, {"code": "bad_response", "status": 200}),
        # JSON with an `error` that is not one of the endpoint's codes (a proxy's): the promised
        # code union holds, so it is a bad_response
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/proxy-error"}, {"code": "bad_response", "status": 502}),
        # the static server answers POST with an HTML 501: not the endpoint's JSON
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/index.html"}, {"code": "bad_response", "status": 501}),
        ({"agentId": TEST_AGENT, "endpoint": "http://localhost:9/token"}, {"code": "network_error", "status": 0}),
        # caller authentication: both tokens sent in their headers; a null ID token sends none
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/authenticated", "idToken": "id.token.value",
          "appCheckToken": "app.check.value"}, {"ok": True}),
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/authenticated", "idToken": None,
          "appCheckToken": "app.check.value"}, {"code": "unauthenticated", "status": 401}),
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/authenticated", "idToken": "id.token.value"},
         {"code": "app_check_failed", "status": 401}),
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/fake/auth-unavailable", "idToken": "id.token.value"},
         {"code": "auth_unavailable", "status": 503, "retryAfter": 5}),
    ]
    args = [case for case, _ in cases]
    results = {twin: page.evaluate(RUN_CASES, {"module": module, "cases": args})
               for twin, module in (("js", "/getEphemeralKeyFromServer.js"), ("ts", "/__ts__/helper.js"))}

    for (case, expected), got in zip(cases, results["js"]):
        if expected.get("ok"):
            assert got == {"ok": True, "value": "string", "expiresAt": "number", "helper": True}, (case, got)
        else:
            assert got["typed"] and got["name"] == "EphemeralKeyError" and got["message"], (case, got)
            assert {k: got[k] for k in expected} == expected, (case, got)
    assert results["ts"] == results["js"]
    # What the fake authenticated endpoint received, per twin: the success case (called twice:
    # requestEphemeralKey, then getEphemeralKeyFromServer), the null ID token, no App Check.
    both = {"authorization": "Bearer id.token.value", "appcheck": "app.check.value"}
    per_twin = [both, both, {"authorization": None, "appcheck": "app.check.value"},
                {"authorization": "Bearer id.token.value", "appcheck": None}]
    assert sent == per_twin + per_twin


class _StallingBody(BaseHTTPRequestHandler):
    """Answers 200 with CORS, sends part of the body, then stalls (until the test ends)."""

    def log_message(self, *args):
        pass

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"client_secret": ')
        self.wfile.flush()
        self.server.release.wait(10)


ABORT_WHILE_READING = """async ({ module, endpoint }) => {
  const m = await import(module);
  const controller = new AbortController();
  const call = m.requestEphemeralKey("agent-1", { endpoint, signal: controller.signal });
  setTimeout(() => controller.abort(), 300);
  try { await call; return { ok: true }; }
  catch (e) { return { ok: false, name: e.name, typed: e instanceof m.EphemeralKeyError }; }
}"""


def test_cancelling_while_the_body_arrives_is_a_cancellation_in_both_twins(devserver, page, compiled_ts):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StallingBody)
    server.daemon_threads = True
    server.release = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://localhost:{devserver.web_port}"
    page.route(f"{origin}/__ts__/helper.js", lambda route: route.fulfill(body=compiled_ts, content_type="text/javascript"))
    page.goto(devserver.page_url())
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        for module in ("/getEphemeralKeyFromServer.js", "/__ts__/helper.js"):
            got = page.evaluate(ABORT_WHILE_READING, {"module": module, "endpoint": endpoint})
            # the caller's own abort comes back as such, not as a bogus bad_response
            assert got == {"ok": False, "name": "AbortError", "typed": False}, (module, got)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
