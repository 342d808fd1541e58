"""One structured log line per request, in Cloud Logging's shape, from the real server."""
from __future__ import annotations

import re
import secrets

import pytest

from function_helpers import HTTPS_APP, PROJECT, assert_no_secrets, fn_url, log_lines

pytestmark = pytest.mark.usefixtures("fresh_upstream")
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def fn(servers):
    return servers.get("strict")


def lines_for(fn, marker: str) -> list[dict]:
    return [line for line in log_lines(fn) if line.get("httpRequest", {}).get("userAgent") == marker]


def test_success_line_has_the_cloud_logging_fields(api, fn, upstream):
    ua = "ua-" + secrets.token_hex(6)
    r = api.post(fn_url(fn) + "?utm=x", {"agentId": "agent-1", "source": "web"},
                 headers={"Origin": HTTPS_APP, "User-Agent": ua, "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
                          "X-Cloud-Trace-Context": f"{TRACE}/1234;o=1"})
    assert r.status_code == 200
    [line] = lines_for(fn, ua)
    assert line["severity"] == "INFO"
    assert "200" in line["message"]
    http = line["httpRequest"]
    assert http["requestMethod"] == "POST"
    assert http["requestUrl"] == "/token"  # path only: no query string, no host
    assert http["status"] == 200
    assert re.fullmatch(r"\d+\.\d+s", http["latency"])
    assert http["remoteIp"] == "127.0.0.1"  # the peer, not a header the client can write
    assert line["forwardedFor"] == "203.0.113.9, 10.0.0.1"
    assert line["code"] == "ok"
    assert line["agentId"] == "agent-1"
    assert line["origin"] == HTTPS_APP
    assert line["upstreamStatus"] == 200
    assert isinstance(line["latencyMs"], (int, float)) and line["latencyMs"] >= 0
    assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"
    assert line["logging.googleapis.com/spanId"] == format(1234, "016x")


def test_traceparent_is_used_when_there_is_no_cloud_trace_header(api, fn):
    ua = "ua-" + secrets.token_hex(6)
    api.post(fn_url(fn), {"agentId": "agent-1"},
             headers={"Origin": HTTPS_APP, "User-Agent": ua, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    [line] = lines_for(fn, ua)
    assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


@pytest.mark.parametrize("header", [None, "not-a-trace", "xyz/1;o=1"])
def test_no_trace_field_without_a_well_formed_trace_header(api, fn, header):
    ua = "ua-" + secrets.token_hex(6)
    headers = {"Origin": HTTPS_APP, "User-Agent": ua}
    if header:
        headers["X-Cloud-Trace-Context"] = header
    api.post(fn_url(fn), {"agentId": "agent-1"}, headers=headers)
    [line] = lines_for(fn, ua)
    assert "logging.googleapis.com/trace" not in line


def test_rejections_log_one_warning_line_with_their_code(api, fn):
    ua = "ua-" + secrets.token_hex(6)
    r = api.post(fn_url(fn), {"agentId": "agent-1&x=y"}, headers={"Origin": HTTPS_APP, "User-Agent": ua})
    assert r.status_code == 400
    [line] = lines_for(fn, ua)
    assert line["severity"] == "WARNING"
    assert line["code"] == "invalid_agent_id"
    assert line["httpRequest"]["status"] == 400
    assert line["agentId"] is None  # an invalid id is not echoed into the logs
    assert line["upstreamStatus"] is None


def test_upstream_failures_log_an_error_with_the_upstream_status(api, fn, upstream):
    ua = "ua-" + secrets.token_hex(6)
    upstream.behaviour = "403"
    r = api.post(fn_url(fn), {"agentId": "agent-1"}, headers={"Origin": HTTPS_APP, "User-Agent": ua})
    assert r.status_code == 502
    [line] = lines_for(fn, ua)
    assert line["severity"] == "ERROR"
    assert line["code"] == "upstream_auth_failed"
    assert line["upstreamStatus"] == 403
    assert line["agentId"] == "agent-1"


def test_preflight_and_404_are_logged_too(api, fn):
    ua = "ua-" + secrets.token_hex(6)
    api.request("OPTIONS", fn_url(fn), content_type=None, headers={"Origin": HTTPS_APP, "User-Agent": ua})
    api.request("GET", fn_url(fn, "/robots.txt"), headers={"Origin": HTTPS_APP, "User-Agent": ua})
    codes = [line["code"] for line in lines_for(fn, ua)]
    assert codes == ["preflight", "not_found"]


def test_every_printed_line_is_structured_json(api, fn):
    # nothing else (framework banners, stray prints) interleaves with the request lines
    output = fn.output().splitlines()
    assert output
    assert len(log_lines(fn)) == len(output)


def test_hostile_header_values_stay_inside_their_json_field(api, fn):
    ua = 'ua-' + secrets.token_hex(4) + '"},"severity":"EMERGENCY","x":{"y":"\\n'
    api.post(fn_url(fn), {"agentId": "agent-1"}, headers={"Origin": HTTPS_APP, "User-Agent": ua})
    [line] = lines_for(fn, ua)  # the whole value came back as the user agent, nothing more
    assert line["severity"] == "INFO"
    assert all(other.get("severity") != "EMERGENCY" for other in log_lines(fn))


def test_lines_survive_the_frameworks_execution_id_logging(api, servers):
    fn = servers.get("execution_id")
    ua = "ua-" + secrets.token_hex(6)
    r = api.post(fn_url(fn), {"agentId": "agent-1"},
                 headers={"User-Agent": ua, "Function-Execution-Id": "exec-42", "X-Cloud-Trace-Context": f"{TRACE}/7"})
    assert r.status_code == 200
    [line] = lines_for(fn, ua)
    assert line["code"] == "ok" and line["severity"] == "INFO"
    assert line["logging.googleapis.com/labels"]["execution_id"] == "exec-42"
    assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE}"


def test_zz_output_holds_no_secrets(api, servers, upstream):
    assert_no_secrets(servers, upstream, api)
