"""Metrics and logs in step: the planned log-based metrics, alert conditions and dashboard
charts are run over REAL log lines from the running function (functions-framework server
against the Outspeed stand-in), mapped to LogEntries the way Cloud Logging maps structured
stdout. A log field the metrics read that the function stops writing (or renames) fails here.
"""
from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

import logcontract as lc
from outspeed_token import monitoring as mon
from tools.function_server import FunctionServer, free_port
from tools.outspeed_standin import OutspeedStandIn
from tools.plan import PLACEHOLDER_PROJECT, ROOT, run_isolated

API_KEY = "sk-live-" + secrets.token_hex(20)
APP = "https://app.example.com"
EXPLODE = "explode-internal-error"  # the agent id the fault-injected copy raises on

# Every code the alerts and charts name, and how to make the real function write it.
# (server, stand-in behaviour, method, origin, body)
SCENARIOS: dict[str, tuple[str, str, str, str, Any]] = {
    "ok": ("main", "success", "POST", APP, {"agentId": "agent-1"}),
    "preflight": ("main", "success", "OPTIONS", APP, None),
    "origin_not_allowed": ("main", "success", "POST", "https://evil.example.net", {"agentId": "agent-1"}),
    "invalid_agent_id": ("main", "success", "POST", APP, {"agentId": "bad id!"}),
    "agent_not_allowed": ("main", "success", "POST", APP, {"agentId": "agent-2"}),
    "method_not_allowed": ("main", "success", "GET", APP, None),
    "agent_not_found": ("main", "404", "POST", APP, {"agentId": "agent-1"}),
    "upstream_rate_limited": ("main", "429", "POST", APP, {"agentId": "agent-1"}),
    "upstream_auth_failed": ("main", "401", "POST", APP, {"agentId": "agent-1"}),
    "upstream_error": ("main", "500", "POST", APP, {"agentId": "agent-1"}),
    "upstream_bad_response": ("main", "non_json", "POST", APP, {"agentId": "agent-1"}),
    "upstream_timeout": ("main", "slow", "POST", APP, {"agentId": "agent-1"}),
    "internal_error": ("main", "success", "POST", APP, {"agentId": EXPLODE}),
    "upstream_unreachable": ("dead", "success", "POST", APP, {"agentId": "agent-1"}),
    "not_configured": ("no_key", "success", "POST", APP, {"agentId": "agent-1"}),
    # caller authentication (issue 18): no token, and a token whose issuer's keys cannot be fetched
    "unauthenticated": ("id_token", "success", "POST", APP, {"agentId": "agent-1"}),
    "auth_unavailable": ("id_token", "success", "POST", APP, {"agentId": "agent-1"}),
    "app_check_failed": ("app_check", "success", "POST", APP, {"agentId": "agent-1"}),
}


def _b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# A well-formed ID token (a kid to look up): the function must fetch the issuer's keys to judge it.
TOKEN = ".".join(_b64(json.dumps(part).encode()) for part in ({"alg": "RS256", "kid": "k1", "typ": "JWT"},
                                                                {"sub": "someone"})) + "." + _b64(b"signature")
HEADERS = {"auth_unavailable": {"Authorization": f"Bearer {TOKEN}"}}

FAULT_HOOK = '''

# --- added by tests/monitoring: a request for agent "{agent}" raises inside the handler, so
# the real server writes a real internal_error line. Not part of the deployed function.
_plan_for_real = plan


def plan(body, settings):
    if isinstance(body, dict) and body.get("agentId") == "{agent}":
        raise RuntimeError("fault injected by tests/monitoring")
    return _plan_for_real(body, settings)
'''


def _fault_injected_copy(tmp: Path) -> Path:
    copy = tmp / "function"
    shutil.copytree(ROOT / "function", copy, ignore=shutil.ignore_patterns("__pycache__"))
    policy = copy / "token_policy.py"
    if "\ndef plan(" not in policy.read_text():
        pytest.fail("function/token_policy.py no longer defines plan(); move the internal_error fault hook "
                    "in tests/monitoring to whatever the handler now calls")
    policy.write_text(policy.read_text() + FAULT_HOOK.format(agent=EXPLODE))
    return copy / "main.py"


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """code -> the real JSON log line the function wrote for that scenario."""
    source = _fault_injected_copy(tmp_path_factory.mktemp("fn"))
    upstream = OutspeedStandIn(api_key=API_KEY).start()
    upstream.state.slow_seconds = 2.5
    base = {"OUTSPEED_API_KEY": API_KEY, "OUTSPEED_API_BASE": upstream.url, "GOOGLE_CLOUD_PROJECT": "proj-test",
            "ALLOWED_HOSTNAMES": "app.example.com", "HTTPS_ORIGINS_ONLY": "true",
            "ALLOWED_AGENT_IDS": f"agent-1,{EXPLODE}", "UPSTREAM_TIMEOUT_SECONDS": "1", "THREADS": "4"}
    envs = {"main": base,
            "dead": {**base, "OUTSPEED_API_BASE": f"http://127.0.0.1:{free_port()}"},
            "no_key": {k: v for k, v in base.items() if k != "OUTSPEED_API_KEY"},
            # keys on a loopback port nobody listens on: fetching them fails, none are cached
            "id_token": {**base, "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com", "AUTH_ID_TOKEN_AUDIENCE": "aud",
                         "AUTH_ID_TOKEN_JWKS_URI": f"http://127.0.0.1:{free_port()}/jwks"},
            "app_check": {**base, "AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"}}
    servers = {name: FunctionServer(env, source=source) for name, env in envs.items()}
    marks: dict[str, str] = {}
    try:
        for server in servers.values():
            server.start()
        with requests.Session() as http:
            for code, (name, behaviour, method, origin, body) in SCENARIOS.items():
                upstream.behaviour = behaviour
                marks[code] = f"monitoring-{code}-{secrets.token_hex(4)}"
                headers = {"Origin": origin, "User-Agent": marks[code], "Content-Type": "application/json",
                           "X-Cloud-Trace-Context": f"{secrets.token_hex(16)}/1;o=1"}
                if method == "OPTIONS":
                    headers["Access-Control-Request-Method"] = "POST"
                headers.update(HEADERS.get(code, {}))
                data = json.dumps(body).encode() if body is not None else None
                http.request(method, servers[name].url + "/token", data=data, headers=headers, timeout=20)
        lines: dict[str, dict[str, Any]] = {}
        for server in servers.values():
            for text in server.output().splitlines():
                if text.startswith("{"):
                    try:
                        line = json.loads(text)
                    except ValueError:
                        continue
                    ua = (line.get("httpRequest") or {}).get("userAgent")
                    for code, mark in marks.items():
                        if ua == mark:
                            lines[code] = line
    finally:
        for server in servers.values():
            server.stop()
        upstream.stop()
    return lines


@pytest.fixture(scope="module")
def planned() -> dict[str, Any]:
    """The prod plan (edge, so every metric and alert), with a notified address."""
    result = run_isolated("prod", {"gcp:project": PLACEHOLDER_PROJECT, "gcp:region": "us-central1",
                                   "monitoring": {"alertEmails": ["oncall@example.com"]}})
    assert result["error"] is None, result["error"]
    return result


def _of_type(run, typ):
    return [r["inputs"] for r in run["resources"] if r["type"] == typ]


@pytest.fixture(scope="module")
def metrics(planned) -> dict[str, dict[str, Any]]:
    """suffix (requests, latency, armor-denials) -> planned gcp.logging.Metric inputs."""
    return {m["name"].removeprefix("outspeed-token-prod-"): m for m in _of_type(planned, "gcp:logging/metric:Metric")}


@pytest.fixture(scope="module")
def service_name(planned) -> str:
    (fn,) = _of_type(planned, "gcp:cloudfunctionsv2/function:Function")
    return fn["name"]  # a 2nd-gen function's Cloud Run service carries the function's name


def entries_of(lines: dict[str, dict[str, Any]], service_name: str) -> dict[str, dict[str, Any]]:
    return {code: lc.to_log_entry(line, project=PLACEHOLDER_PROJECT, service_name=service_name)
            for code, line in lines.items()}


def contract_problems(function_metrics: list[dict[str, Any]], lines: dict[str, dict[str, Any]],
                      service_name: str) -> list[str]:
    """Why the function's metrics would not see these lines as intended ([] = in step): every
    request line must pass each metric's filter, and every label/value extractor must find its
    field, with the label carrying the line's own code and status."""
    problems = []
    for code, entry in entries_of(lines, service_name).items():
        for metric in function_metrics:
            name = metric["name"]
            if not lc.log_filter_matches(metric["filter"], entry):
                absent = [p for p in lc.filter_paths(metric["filter"]) if lc.missing(lc.field(entry, p))]
                problems.append(f"{code}: {name} filter does not match (absent: {absent})")
                continue
            for label, extractor in (metric.get("labelExtractors") or {}).items():
                if lc.missing(lc.extract(extractor, entry)):
                    problems.append(f"{code}: {name} label {label}: {extractor} finds nothing")
            if metric.get("valueExtractor"):
                value = lc.extract(metric["valueExtractor"], entry)
                if lc.missing(value) or not isinstance(value, (int, float)) or value < 0:
                    problems.append(f"{code}: {name} value {metric['valueExtractor']} is {value!r}, not a duration")
        (point,) = lc.metric_points(next(m for m in function_metrics if m["name"].endswith("-requests")), [entry]) or [{}]
        if point and (point.get("metric.label.code"), point.get("metric.label.status")) != (
                lines[code].get("code"), str((lines[code].get("httpRequest") or {}).get("status"))):
            problems.append(f"{code}: labels {point} do not carry the line's code and status")
    return problems


# --- the tests ---------------------------------------------------------------------------------

def test_every_scenario_produced_its_real_log_line(captured):
    assert set(captured) == set(SCENARIOS), f"no line for {sorted(set(SCENARIOS) - set(captured))}"
    for code, line in captured.items():
        assert line["code"] == code, (code, line)
    assert captured["ok"]["httpRequest"]["status"] == 200
    assert captured["upstream_auth_failed"]["httpRequest"]["status"] == 502


def test_function_metrics_read_only_fields_the_function_writes(captured, metrics, service_name):
    function_metrics = [metrics["requests"], metrics["latency"]]
    assert contract_problems(function_metrics, captured, service_name) == []
    # ...and they read what Cloud Logging puts where the filter looks: the code under
    # jsonPayload, the status under the LogEntry's httpRequest, the service as a resource label.
    entry = lc.to_log_entry(captured["ok"], project=PLACEHOLDER_PROJECT, service_name=service_name)
    assert set(lc.filter_paths(metrics["requests"]["filter"])) == {
        "resource.type", "resource.labels.service_name", "jsonPayload.code"}
    assert lc.extract(metrics["requests"]["labelExtractors"]["status"], entry) == 200
    assert lc.extract(metrics["latency"]["valueExtractor"], entry) == captured["ok"]["latencyMs"]


def test_the_metric_filter_ignores_other_services_and_the_platforms_request_log(captured, metrics, service_name):
    entry = lc.to_log_entry(captured["ok"], project=PLACEHOLDER_PROJECT, service_name="another-service")
    assert not lc.log_filter_matches(metrics["requests"]["filter"], entry)
    platform = {"resource": {"type": "cloud_run_revision", "labels": {"service_name": service_name}},
                "httpRequest": {"status": 200, "requestMethod": "POST"},
                "logName": f"projects/{PLACEHOLDER_PROJECT}/logs/run.googleapis.com%2Frequests"}
    assert not lc.log_filter_matches(metrics["requests"]["filter"], platform)


@pytest.mark.parametrize("rename", [("code", "errorCode"), ("latencyMs", "latency_ms"), ("httpRequest.status", "statusCode")],
                         ids=["code", "latencyMs", "httpRequest.status"])
def test_a_renamed_log_field_fails_the_check(captured, metrics, service_name, rename):
    old, new = rename
    renamed = {}
    for code, line in captured.items():
        line = json.loads(json.dumps(line))
        *parents, leaf = old.split(".")
        holder = line
        for parent in parents:
            holder = holder[parent]
        holder[new] = holder.pop(leaf)
        renamed[code] = line
    problems = contract_problems([metrics["requests"], metrics["latency"]], renamed, service_name)
    assert len(problems) >= len(captured), problems  # every line is now mis-read
    assert any(leaf in p or "filter does not match" in p for p in problems)


def _points(captured, metrics, service_name):
    entries = list(entries_of(captured, service_name).values())
    return lc.metric_points(metrics["requests"], entries)


def _codes(points, filter_) -> set[str]:
    return {p["metric.label.code"] for p in points if lc.monitoring_filter_matches(filter_, p)}


def _named_codes(filter_) -> set[str]:
    return {v for path, _, values in lc.monitoring_filter_terms(filter_) if path == "metric.label.code" for v in values}


def test_alert_conditions_select_exactly_the_codes_they_name(planned, captured, metrics, service_name):
    points = _points(captured, metrics, service_name)
    requests_type = f"logging.googleapis.com/user/{metrics['requests']['name']}"
    policies = {p["displayName"].split(": ", 1)[1]: p for p in _of_type(planned, "gcp:monitoring/alertPolicy:AlertPolicy")}
    checked = 0
    for title, policy in policies.items():
        for condition in policy["conditions"]:
            threshold = condition["conditionThreshold"]
            for key in ("filter", "denominatorFilter"):
                if key not in threshold:
                    continue
                filter_ = threshold[key]
                kind = lc.monitoring_filter_metric_type(filter_)
                if kind != requests_type:
                    # Only platform metrics and the Armor metric may be read otherwise (tested below).
                    assert kind in ("run.googleapis.com/request_count",
                                    f"logging.googleapis.com/user/{metrics['armor-denials']['name']}"), (title, kind)
                    continue
                assert _codes(points, filter_) == _named_codes(filter_), (title, key)
                checked += 1
    # key rejected, ratio numerator and denominator, its volume floor, function failures, spend watch,
    # caller verification unavailable, unauthenticated surge
    assert checked == 8
    by_title = {t: [c["conditionThreshold"] for c in p["conditions"]] for t, p in policies.items()}
    assert _codes(points, by_title["Outspeed key rejected"][0]["filter"]) == {"upstream_auth_failed"}
    ratio, floor = by_title["Outspeed failing"]
    assert floor["filter"] == ratio["denominatorFilter"]  # the floor counts the ratio's own calls
    assert _codes(points, ratio["filter"]) == {"upstream_error", "upstream_bad_response", "upstream_unreachable",
                                               "upstream_timeout"}
    assert _codes(points, ratio["filter"]) < _codes(points, ratio["denominatorFilter"])
    assert "ok" in _codes(points, ratio["denominatorFilter"])
    assert not {"origin_not_allowed", "invalid_agent_id", "preflight"} & _codes(points, ratio["denominatorFilter"])
    assert _codes(points, by_title["Token function failing"][0]["filter"]) == {"internal_error", "not_configured"}
    assert _codes(points, by_title["Keys minted above the hourly budget"][0]["filter"]) == {"ok"}
    assert _codes(points, by_title["Caller verification unavailable"][0]["filter"]) == {"auth_unavailable"}
    assert _codes(points, by_title["Unauthenticated callers surging"][0]["filter"]) == {"unauthenticated",
                                                                                        "app_check_failed"}


def test_dashboard_charts_show_real_lines(planned, captured, metrics, service_name):
    (board,) = _of_type(planned, "gcp:monitoring/dashboard:Dashboard")
    board = json.loads(board["dashboardJson"])
    points = _points(captured, metrics, service_name)
    latency_points = lc.metric_points(metrics["latency"], list(entries_of(captured, service_name).values()))
    ours = {f"logging.googleapis.com/user/{metrics['requests']['name']}": points,
            f"logging.googleapis.com/user/{metrics['latency']['name']}": latency_points}
    charts = {}
    for tile in board["mosaicLayout"]["tiles"]:
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            filter_ = data_set["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
            kind = lc.monitoring_filter_metric_type(filter_)
            if kind in ours:
                matched = [p for p in ours[kind] if lc.monitoring_filter_matches(filter_, p)]
                assert matched, f"chart {tile['widget']['title']!r} would stay empty under real traffic"
                charts.setdefault(tile["widget"]["title"], set()).update(p["metric.label.code"] for p in matched)
    refusals = next(codes for title, codes in charts.items() if title.startswith("Refusals"))
    assert {"origin_not_allowed", "invalid_agent_id", "agent_not_allowed", "method_not_allowed"} <= refusals
    assert not {"ok", "preflight", "upstream_error"} & refusals
    assert next(c for t, c in charts.items() if t.startswith("Keys minted")) == {"ok"}
    assert next(c for t, c in charts.items() if t.startswith("Callers refused")) == {
        "unauthenticated", "app_check_failed", "auth_unavailable"}
    assert all(isinstance(p["value"], (int, float)) for p in latency_points)


def _policies(planned) -> dict[str, dict[str, Any]]:
    return {p["displayName"].split(": ", 1)[1]: p for p in _of_type(planned, "gcp:monitoring/alertPolicy:AlertPolicy")}


def test_outspeed_failing_needs_the_ratio_and_enough_calls_in_the_same_window(planned, captured, metrics,
                                                                              service_name):
    """Zero traffic, a handful of calls with failures among them, and a healthy busy window stay
    quiet; a busy window with the same failure share pages (default floor: 10 calls)."""
    policy = _policies(planned)["Outspeed failing"]
    assert policy["combiner"] == "AND"
    points = _points(captured, metrics, service_name)  # one real line of every outcome
    calls = [p for p in points if p["metric.label.code"] in mon.UPSTREAM_CALLED]
    failed = [p for p in calls if p["metric.label.code"] in mon.UPSTREAM_FAILED]
    ok = [p for p in calls if p["metric.label.code"] == "ok"]
    assert (len(calls), len(failed)) == (8, 4)
    assert not lc.policy_fires(policy, [])  # no traffic: no data, no incident
    assert not lc.policy_fires(policy, calls)  # 4 of 8 failed, but 8 calls are below the floor
    assert lc.policy_fires(policy, calls * 2)  # 8 of 16 failed: an outage
    assert not lc.policy_fires(policy, ok * 50)  # busy and healthy: numerator has no data
    assert not lc.policy_fires(policy, ok * 50 + failed[:1])  # 1 failure in 51 calls is under 0.1
    assert lc.policy_fires(policy, ok * 20 + failed)  # 4 in 24 is above 0.1


def test_the_other_alerts_fire_on_their_real_lines_and_stay_quiet_without_them(planned, captured, metrics,
                                                                                service_name):
    policies = _policies(planned)
    points = _points(captured, metrics, service_name)
    by_code = {p["metric.label.code"]: p for p in points}
    everything_but = lambda *codes: [p for c, p in by_code.items() if c not in codes]  # noqa: E731
    key = policies["Outspeed key rejected"]
    assert lc.policy_fires(key, [by_code["upstream_auth_failed"]])
    assert not lc.policy_fires(key, everything_but("upstream_auth_failed"))
    function = policies["Token function failing"]
    function_logs = {**function, "conditions": function["conditions"][:1]}  # the platform metric is not modelled
    for code in mon.FUNCTION_FAILED:
        assert lc.policy_fires(function_logs, [by_code[code]]), code
    assert not lc.policy_fires(function_logs, everything_but(*mon.FUNCTION_FAILED))
    spend = policies["Keys minted above the hourly budget"]
    assert not lc.policy_fires(spend, [by_code["ok"]] * 1000)
    assert lc.policy_fires(spend, [by_code["ok"]] * 1001)


# The load balancer's request log cannot be produced offline; this entry follows the structure
# Google documents for Cloud Armor request logging (jsonPayload.enforcedSecurityPolicy with
# name, priority, configuredAction, outcome; statusDetails; httpRequest.status).
def _lb_entry(policy: str, outcome: str, priority: int, status: int) -> dict[str, Any]:
    return {"resource": {"type": "http_load_balancer",
                         "labels": {"backend_service_name": "outspeed-token-prod-backend", "project_id": PLACEHOLDER_PROJECT}},
            "httpRequest": {"status": status, "requestMethod": "POST", "requestUrl": "https://token.example.com/token"},
            "jsonPayload": {"@type": "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry",
                            "statusDetails": "denied_by_security_policy" if outcome == "DENY" else "response_sent_by_backend",
                            "enforcedSecurityPolicy": {"name": policy, "priority": priority,
                                                       "configuredAction": "DENY" if priority == 1000 else "RATE_BASED_BAN",
                                                       "outcome": outcome}}}


def test_armor_metric_counts_this_policys_denials_by_rule(planned, metrics):
    (policy,) = _of_type(planned, "gcp:compute/securityPolicy:SecurityPolicy")
    armor = metrics["armor-denials"]
    entries = [_lb_entry(policy["name"], "DENY", 1000, 403), _lb_entry(policy["name"], "DENY", 2000, 429),
               _lb_entry(policy["name"], "ACCEPT", 2147483647, 200), _lb_entry("someone-elses-policy", "DENY", 1000, 403)]
    points = lc.metric_points(armor, entries)
    assert [(p["metric.label.rule"], p["metric.label.status"]) for p in points] == [("1000", "403"), ("2000", "429")]
    (alert,) = [p for p in _of_type(planned, "gcp:monitoring/alertPolicy:AlertPolicy") if "Armor" in p["displayName"]]
    assert all(lc.monitoring_filter_matches(alert["conditions"][0]["conditionThreshold"]["filter"], p) for p in points)


def test_codes_the_monitoring_names_are_the_functions_own():
    import sys
    sys.path.insert(0, str(ROOT / "function"))
    try:
        from token_policy import ERRORS
    finally:
        sys.path.remove(str(ROOT / "function"))
    named = {mon.MINTED, *mon.KEY_REJECTED, *mon.UPSTREAM_FAILED, *mon.UPSTREAM_CALLED, *mon.FUNCTION_FAILED}
    assert named - {"ok"} <= set(ERRORS), named - set(ERRORS)


@pytest.mark.parametrize("bad", [
    'jsonPayload.code="a" OR jsonPayload.code="b"', "jsonPayload.code:*", 'NOT jsonPayload.code="a"',
    "httpRequest.status>=500", '(jsonPayload.code="a")', "jsonPayload.code=a"])
def test_the_log_filter_evaluator_refuses_what_it_does_not_implement(bad):
    with pytest.raises(lc.UnsupportedConstruct):
        lc.log_filter_matches(bad, {})


@pytest.mark.parametrize("bad", ['REGEXP_EXTRACT(jsonPayload.code, "(.*)")', "jsonPayload.code", "EXTRACT(a b)"])
def test_the_extractor_evaluator_refuses_what_it_does_not_implement(bad):
    with pytest.raises(lc.UnsupportedConstruct):
        lc.extract(bad, {})


@pytest.mark.parametrize("bad", ['metric.label.code!="ok"', 'metric.label.code=has_substring("o")',
                                 'metric.type="a" OR metric.type="b"', "metric.label.code=monitoring.regex.full_match(\"o\")"])
def test_the_monitoring_filter_evaluator_refuses_what_it_does_not_implement(bad):
    with pytest.raises(lc.UnsupportedConstruct):
        lc.monitoring_filter_matches(bad, {})


def test_the_evaluators_decide_like_logging_and_monitoring():
    entry = {"resource": {"type": "cloud_run_revision"}, "jsonPayload": {"code": "ok", "n": None}, "httpRequest": {"status": 200}}
    assert lc.log_filter_matches('resource.type="cloud_run_revision" AND jsonPayload.code=~"^[a-z_]+$"', entry)
    assert not lc.log_filter_matches('jsonPayload.code=~"^[0-9]+$"', entry)
    assert not lc.log_filter_matches('jsonPayload.n="None"', entry)  # null = absent
    assert lc.missing(lc.extract("EXTRACT(jsonPayload.missing)", entry))
    point = {"metric.type": "m", "metric.label.code": "ok", "metric.label.status": "404"}
    assert lc.monitoring_filter_matches('metric.type="m" AND metric.label.code=one_of("ok", "x")', point)
    assert lc.monitoring_filter_matches('metric.label.status=starts_with("4")', point)
    assert not lc.monitoring_filter_matches('metric.label.status=starts_with("5")', point)
    assert not lc.monitoring_filter_matches('metric.label.other="ok"', point)


@pytest.mark.parametrize("threshold", [
    {"filter": 'metric.type="m"', "comparison": "COMPARISON_GT", "thresholdValue": 0,
     "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
     "aggregations": [{"perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM"}]},
    {"filter": 'metric.type="m"', "comparison": "COMPARISON_GT", "thresholdValue": 0,
     "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
     "aggregations": [{"perSeriesAligner": "ALIGN_SUM", "crossSeriesReducer": "REDUCE_SUM",
                       "groupByFields": ["metric.label.code"]}]},
    {"filter": 'metric.type="m"', "comparison": "COMPARISON_LT", "thresholdValue": 5,
     "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
     "aggregations": [{"perSeriesAligner": "ALIGN_SUM", "crossSeriesReducer": "REDUCE_SUM"}]},
    {"filter": 'metric.type="m"', "comparison": "COMPARISON_GT", "thresholdValue": 0,
     "evaluationMissingData": "EVALUATION_MISSING_DATA_ACTIVE",
     "aggregations": [{"perSeriesAligner": "ALIGN_SUM", "crossSeriesReducer": "REDUCE_SUM"}]},
], ids=["rate aligner", "grouped", "less-than", "missing data active"])
def test_the_window_evaluator_refuses_what_it_does_not_model(threshold):
    with pytest.raises(lc.UnsupportedConstruct):
        lc.condition_met(threshold, [{"metric.type": "m"}])


def _burst_threshold(window_seconds: int, duration: str) -> dict[str, Any]:
    return {"filter": 'metric.type="m"', "comparison": "COMPARISON_GT", "thresholdValue": 0, "duration": duration,
            "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE",
            "aggregations": [{"alignmentPeriod": f"{window_seconds}s", "perSeriesAligner": "ALIGN_SUM",
                              "crossSeriesReducer": "REDUCE_SUM"}]}


def test_a_burst_pages_only_when_the_window_outlasts_the_duration():
    """Why monitoring windows start at MIN_WINDOW_MINUTES: with the 60 s duration the API requires
    next to evaluationMissingData, a one-minute window would forget a lone failure before it counts."""
    burst = [{"metric.type": "m"}]
    assert lc.condition_met(_burst_threshold(mon.MIN_WINDOW_MINUTES * 60, f"{mon.ALERT_DURATION_SECONDS}s"), burst)
    assert not lc.condition_met(_burst_threshold(60, f"{mon.ALERT_DURATION_SECONDS}s"), burst)
    assert lc.condition_met(_burst_threshold(60, "0s"), burst)  # the old shape paged at once (and was refused)


@pytest.mark.parametrize("duration", ["90s", "1m", "60"])
def test_the_window_evaluator_refuses_durations_the_api_refuses(duration):
    with pytest.raises(lc.UnsupportedConstruct):
        lc.condition_met(_burst_threshold(300, duration), [{"metric.type": "m"}])


def test_every_planned_condition_waits_the_duration_and_its_window_outlasts_it(planned):
    for policy in _of_type(planned, "gcp:monitoring/alertPolicy:AlertPolicy"):
        for condition in policy["conditions"]:
            t = condition["conditionThreshold"]
            assert t["duration"] == f"{mon.ALERT_DURATION_SECONDS}s", policy["displayName"]
            assert lc._held_for_duration(t), policy["displayName"]
