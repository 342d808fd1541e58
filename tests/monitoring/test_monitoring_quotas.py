"""The spend ceiling's metric, alerts and charts (issue 15), evaluated the way Cloud Logging and
Cloud Monitoring would (logcontract) over request lines of the shape the function writes.

The lines here are built, not captured: the function's quota step lands on another branch
(its `quota` field: caller, global, unavailable, open; DESIGN.md "Spend ceiling"). Each line
is a real captured line's shape (token_log.py) with the quota fields added, so the metric's
filter and extractors are checked against the same LogEntry mapping the log-contract tests use.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

import logcontract as lc
from outspeed_token import monitoring as mon
from tools.plan import PLACEHOLDER_PROJECT, run_isolated

SERVICE = "outspeed-token-prod"


def _line(code: str, status: int, quota: str | None = None, severity: str = "WARNING") -> dict[str, Any]:
    line = {"severity": severity, "message": f"POST /token {status} {code}", "code": code,
            "httpRequest": {"requestMethod": "POST", "requestUrl": "/token", "status": status,
                            "remoteIp": "203.0.113.9", "userAgent": "quota-test", "latency": "0.002s"},
            "latencyMs": 2.1, "origin": "https://app.example.com", "subject": "user-1"}
    if quota is not None:
        line["quota"] = quota
    return line


LINES = {
    "ok": _line("ok", 200, severity="INFO"),
    "caller": _line("quota_exceeded", 429, "caller"),
    "global": _line("quota_exceeded", 429, "global"),
    "unavailable": _line("quota_unavailable", 503, "unavailable", "ERROR"),
    "open": _line("ok", 200, "open"),
    "origin": _line("origin_not_allowed", 403),
}


@pytest.fixture(scope="module")
def planned() -> dict[str, Any]:
    result = run_isolated("prod", {"gcp:project": PLACEHOLDER_PROJECT, "gcp:region": "us-central1",
                                   "quotas": {"perCaller": [{"count": 5, "windowSeconds": 3600}],
                                              "global": [{"count": 500, "windowSeconds": 3600}],
                                              "store": "memorystore"}})
    assert result["error"] is None, result["error"]
    return result


def _inputs(planned, typ):
    return [r["inputs"] for r in planned["resources"] if r["type"] == typ]


@pytest.fixture(scope="module")
def quota_metric(planned) -> dict[str, Any]:
    (metric,) = [m for m in _inputs(planned, "gcp:logging/metric:Metric") if m["name"] == f"{SERVICE}-quota"]
    return metric


def _points(metric, names):
    entries = [lc.to_log_entry(LINES[n], project=PLACEHOLDER_PROJECT, service_name=SERVICE) for n in names]
    return lc.metric_points(metric, entries)


def _policy(planned, title):
    (policy,) = [p for p in _inputs(planned, "gcp:monitoring/alertPolicy:AlertPolicy")
                 if p["displayName"] == f"{SERVICE}: {title}"]
    return policy


def test_the_quota_metric_counts_lines_with_a_quota_field_by_budget(quota_metric):
    points = _points(quota_metric, LINES)
    # Not the plain mint ("ok" without a quota field) nor an earlier refusal (origin_not_allowed).
    assert sorted((p["metric.label.quota"], p["metric.label.code"]) for p in points) == sorted([
        ("caller", "quota_exceeded"), ("global", "quota_exceeded"), ("unavailable", "quota_unavailable"),
        ("open", "ok")])
    other = lc.to_log_entry(LINES["global"], project=PLACEHOLDER_PROJECT, service_name="someone-else")
    assert lc.metric_points(quota_metric, [other]) == []  # another service's lines never count


def test_the_global_alert_fires_on_a_global_refusal_only(planned, quota_metric):
    policy = _policy(planned, "Global mint budget reached")
    assert policy["severity"] == "ERROR"
    assert lc.policy_fires(policy, _points(quota_metric, ["global"]))
    for quiet in (["caller", "caller", "caller"], ["unavailable", "open"], ["ok", "origin"]):
        assert not lc.policy_fires(policy, _points(quota_metric, quiet)), quiet


def test_the_store_alert_fires_when_the_store_fails_closed_or_open(planned, quota_metric):
    policy = _policy(planned, "Quota store failing")
    for failing in (["unavailable"], ["open"]):
        assert lc.policy_fires(policy, _points(quota_metric, failing)), failing
    assert not lc.policy_fires(policy, _points(quota_metric, ["caller", "global", "ok"]))


def test_the_charts_show_per_caller_and_global_refusals_apart(planned, quota_metric):
    (board,) = _inputs(planned, "gcp:monitoring/dashboard:Dashboard")
    tiles = {t["widget"]["title"]: t["widget"] for t in json.loads(board["dashboardJson"])["mosaicLayout"]["tiles"]}
    points = _points(quota_metric, LINES)

    def shown(title):
        (data,) = tiles[title]["xyChart"]["dataSets"]
        filter_ = data["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        assert data["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["perSeriesAligner"] == mon.COUNT_ALIGNER
        return {p["metric.label.quota"] for p in points if lc.monitoring_filter_matches(filter_, p)}

    assert shown("Per-caller budget refusals per second") == {"caller"}
    assert shown("Global budget refusals and quota store failures per second") == {"global", "unavailable", "open"}


def test_without_quotas_there_is_no_quota_metric_alert_or_chart():
    specs = mon.alert_specs(mon.MonitoringSettings(), "svc", "m", "armor")
    assert not {"global-budget", "quota-store"} & {s.key for s in specs}
    assert "quota" not in mon.metric_specs("svc", "policy")
    titles = [t["widget"]["title"] for t in mon.dashboard("d", "svc", "r", "l", None)["mosaicLayout"]["tiles"]]
    assert not [t for t in titles if "budget" in t]


def test_the_quota_alerts_link_runbooks_that_exist_in_operations_md():
    from tools.doc_anchors import file_anchors
    from tools.plan import ROOT
    slugs = file_anchors(ROOT / "docs" / "operations.md")
    specs = [s for s in mon.alert_specs(mon.MonitoringSettings(), "svc", "m", None, "q")
             if s.key in ("global-budget", "quota-store")]
    assert len(specs) == 2
    for spec in specs:
        assert spec.anchor in slugs and spec.title.lower().replace(" ", "-") == spec.anchor
