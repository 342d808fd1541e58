"""The copyable TypeScript helper and its plain-JS twin (the one the page uses): type-checked by
tsc, the same error codes as the endpoint, and the same behaviour in a real browser."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from .conftest import TEST_AGENT
from tools.function_server import ROOT

WEB = ROOT / "examples" / "web"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
NO_TSC = "TypeScript not installed: type check skipped — npm ci"


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
def compiled_ts(tsc, tmp_path_factory):
    out = tmp_path_factory.mktemp("tsc")
    done = subprocess.run([tsc, "--outDir", str(out), "--target", "ES2020", "--module", "ES2020", "--strict",
                           "--lib", "ES2020,DOM", str(WEB / "getEphemeralKeyFromServer.ts")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "getEphemeralKeyFromServer.js").read_text()


RUN_CASES = """async ({ module, cases }) => {
  const m = await import(module);
  const out = [];
  for (const c of cases) {
    try {
      const key = await m.requestEphemeralKey(c.agentId, { endpoint: c.endpoint });
      out.push({ ok: true, value: typeof key.value, expiresAt: typeof key.expiresAt,
                 helper: (await m.getEphemeralKeyFromServer(c.agentId, { endpoint: c.endpoint })).length > 0 });
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
    page.route(f"{origin}/fake/no-secret", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"id": "sess_1", "client_secret": {}})))
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
        # the static server answers POST with an HTML 501: not the endpoint's JSON
        ({"agentId": TEST_AGENT, "endpoint": f"{origin}/index.html"}, {"code": "bad_response", "status": 501}),
        ({"agentId": TEST_AGENT, "endpoint": "http://localhost:9/token"}, {"code": "network_error", "status": 0}),
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
