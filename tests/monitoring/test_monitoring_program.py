"""The monitoring resources the real __main__.py plans under Pulumi mocks, per config case:
dev on (default) and off, prod with and without alert emails, spend watch and Armor alert off,
the edge decided by config (not the stack name), thresholds and windows from config."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tools.plan import PLACEHOLDER_PROJECT, run_isolated

METRIC = "gcp:logging/metric:Metric"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
API = "gcp:projects/service:Service"
MONITORING_TYPES = (METRIC, ALERT, CHANNEL, DASHBOARD)
EMAILS = ["oncall@example.com", "lead@example.com"]
PROD_EDGE_FOR_DEV = {"authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
                     "allowedHostnames": ["app.example.com"], "allowClientSessionConfig": False,
                     "callerAuth": {"idToken": {"issuer": "https://securetoken.google.com/my-project",
                                                "audience": "my-project"}}}

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "dev_off": ("dev", {"monitoring": {"enabled": False}}),
    "prod_emails": ("prod", {"monitoring": {"alertEmails": EMAILS}}),
    "prod_no_emails": ("prod", {}),
    "prod_tuned": ("prod", {"monitoring": {"alertEmails": EMAILS[:1], "mintsPerHourAlert": 0,
                                           "armorDenialsPerMinuteAlert": 0, "upstreamErrorRatio": 0.25,
                                           "unauthenticatedPerMinuteAlert": 0,
                                           "upstreamErrorWindowMinutes": 30, "upstreamMinCalls": 0,
                                           "alertWindowMinutes": 15,
                                           "runbookUrl": "https://github.com/acme/outspeed-token/blob/main/docs/operations.md"}}),
    "dev_with_edge": ("dev", PROD_EDGE_FOR_DEV),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    def one(case):
        stack, overrides = CASES[case]
        return run_isolated(stack, {"gcp:project": PLACEHOLDER_PROJECT, "gcp:region": "us-central1", **overrides})

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(CASES, pool.map(one, CASES)))
    for case, result in results.items():
        assert result["error"] is None, f"{case}: {result['error']}"
    return results


def of_type(run, typ):
    return [r for r in run["resources"] if r["type"] == typ]


def alerts(run) -> dict[str, dict[str, Any]]:
    return {r["inputs"]["displayName"].split(": ", 1)[1]: r for r in of_type(run, ALERT)}


def metric_names(run) -> set[str]:
    return {r["inputs"]["name"] for r in of_type(run, METRIC)}


BASE_ALERTS = {"Outspeed key rejected", "Outspeed failing", "Token function failing"}
SPEND = "Keys minted above the hourly budget"
ARMOR = "Cloud Armor denials surging"
# Issue 18: with callerAuth (the prod stack file sets it), caller verification is watched too.
AUTH_DOWN = "Caller verification unavailable"
UNAUTHENTICATED = "Unauthenticated callers surging"
CALLER_ALERTS = {AUTH_DOWN, UNAUTHENTICATED}
CALLERS_CHART = "Callers refused per second (unauthenticated, app_check_failed, auth_unavailable)"


def test_dev_monitors_by_default_without_armor(runs):
    run = runs["dev"]
    assert metric_names(run) == {"outspeed-token-dev-requests", "outspeed-token-dev-latency"}
    assert set(alerts(run)) == BASE_ALERTS | {SPEND}
    assert len(of_type(run, DASHBOARD)) == 1 and not of_type(run, CHANNEL)
    board = json.loads(of_type(run, DASHBOARD)[0]["inputs"]["dashboardJson"])
    titles = [t["widget"]["title"] for t in board["mosaicLayout"]["tiles"]]
    assert not any("Armor" in t for t in titles)
    assert CALLERS_CHART not in titles  # the dev stack file verifies no callers
    assert {"Keys minted per second", "Instances"} <= set(titles)
    assert any(t.startswith("Latency p50 / p95 / p99") for t in titles)
    apis = {r["inputs"]["service"] for r in of_type(run, API)}
    assert {"logging.googleapis.com", "monitoring.googleapis.com"} <= apis


def test_dev_can_turn_it_all_off(runs):
    run = runs["dev_off"]
    assert not [r for r in run["resources"] if r["type"] in MONITORING_TYPES]
    assert not [r for r in run["resources"] if "Monitoring" in r["type"]]
    apis = {r["inputs"]["service"] for r in of_type(run, API)}
    assert not {"logging.googleapis.com", "monitoring.googleapis.com"} & apis
    assert "dashboardUrl" not in run["outputs"]
    assert "logsUrl" in run["outputs"]  # where the function logs is worth knowing either way
    assert not any("alertEmails" in w for w in run["warnings"])


def test_outputs_link_the_dashboard_and_this_functions_logs(runs):
    for case in ("dev", "prod_emails"):
        outputs = {k: v["value"] for k, v in runs[case]["outputs"].items()}
        service = outputs["functionName"]
        assert outputs["dashboardUrl"].startswith("https://console.cloud.google.com/monitoring/dashboards/builder/")
        assert outputs["dashboardUrl"].endswith(f"?project={PLACEHOLDER_PROJECT}")
        assert outputs["logsUrl"] == (
            "https://console.cloud.google.com/logs/query;query=resource.type%3D%22cloud_run_revision%22%0A"
            f"resource.labels.service_name%3D%22{service}%22?project={PLACEHOLDER_PROJECT}")


def test_prod_with_emails_notifies_every_address_on_every_alert(runs):
    run = runs["prod_emails"]
    channels = of_type(run, CHANNEL)
    assert sorted(c["inputs"]["labels"]["email_address"] for c in channels) == sorted(EMAILS)
    assert all(c["inputs"]["type"] == "email" for c in channels)
    ids = {f"projects/{PLACEHOLDER_PROJECT}/notificationchannels/{c['name']}" for c in channels}  # the mock's ids
    found = alerts(run)
    assert set(found) == BASE_ALERTS | {SPEND, ARMOR} | CALLER_ALERTS
    for policy in found.values():
        assert set(policy["inputs"]["notificationChannels"]) == ids
    assert metric_names(run) == {"outspeed-token-prod-requests", "outspeed-token-prod-latency",
                                 "outspeed-token-prod-armor-denials"}
    assert not any("alertEmails" in w for w in run["warnings"])


def test_prod_without_emails_still_has_every_policy_and_warns(runs):
    run = runs["prod_no_emails"]
    assert set(alerts(run)) == BASE_ALERTS | {SPEND, ARMOR} | CALLER_ALERTS
    assert not of_type(run, CHANNEL)
    assert all(not a["inputs"].get("notificationChannels") for a in alerts(run).values())
    assert any("alertEmails is empty" in w and "nobody is notified" in w for w in run["warnings"])


def test_every_alert_carries_a_runbook_and_a_severity(runs):
    severities = {"Outspeed key rejected": "CRITICAL", "Outspeed failing": "ERROR", "Token function failing": "ERROR",
                  SPEND: "WARNING", ARMOR: "WARNING", AUTH_DOWN: "ERROR", UNAUTHENTICATED: "WARNING"}
    for title, policy in alerts(runs["prod_emails"]).items():
        i = policy["inputs"]
        assert i["severity"] == severities[title]
        doc = i["documentation"]
        assert doc["mimeType"] == "text/markdown"
        assert "### What happened" in doc["content"] and "### What to do" in doc["content"]
        assert 'docs/operations.md, section "The alerts"' in doc["content"]
        assert "links" not in doc  # no runbookUrl configured
        # Only the ratio alert needs two conditions at once (failure share AND enough calls).
        assert i["combiner"] == ("AND" if title == "Outspeed failing" else "OR")
        assert i["userLabels"] == {"deployment": "outspeed-token-prod"}
        for condition in i["conditions"]:
            assert condition["conditionThreshold"]["evaluationMissingData"] == "EVALUATION_MISSING_DATA_INACTIVE"
    key = alerts(runs["prod_emails"])["Outspeed key rejected"]["inputs"]["documentation"]["content"]
    assert "pulumi config set --secret outspeedApiKey" in key and "pulumi up" in key


def test_default_thresholds_and_windows(runs):
    found = {t: [c["conditionThreshold"] for c in a["inputs"]["conditions"]] for t, a in alerts(runs["prod_emails"]).items()}
    (key,) = found["Outspeed key rejected"]
    assert (key["thresholdValue"], key["aggregations"][0]["alignmentPeriod"], key["comparison"]) == (0, "300s", "COMPARISON_GT")
    ratio, floor = found["Outspeed failing"]
    assert ratio["thresholdValue"] == 0.1 and ratio["aggregations"][0]["alignmentPeriod"] == "600s"
    assert ratio["denominatorAggregations"][0]["alignmentPeriod"] == "600s"
    # The volume floor: at least 10 calls to Outspeed (> 9) in the same 10-minute window.
    assert (floor["thresholdValue"], floor["comparison"], floor["aggregations"]) == (
        9, "COMPARISON_GT", ratio["denominatorAggregations"])
    assert floor["filter"] == ratio["denominatorFilter"] and "denominatorFilter" not in floor
    (spend,) = found[SPEND]
    assert (spend["thresholdValue"], spend["aggregations"][0]["alignmentPeriod"]) == (1000, "3600s")
    (armor,) = found[ARMOR]
    assert (armor["thresholdValue"], armor["aggregations"][0]["alignmentPeriod"]) == (300, "300s")  # 60/min x 5 min
    (down,) = found[AUTH_DOWN]  # any auth_unavailable is an incident
    assert (down["thresholdValue"], down["aggregations"][0]["alignmentPeriod"], down["comparison"]) == \
        (0, "300s", "COMPARISON_GT")
    assert down["filter"].endswith('metric.label.code="auth_unavailable"')
    (surge,) = found[UNAUTHENTICATED]
    assert (surge["thresholdValue"], surge["aggregations"][0]["alignmentPeriod"]) == (300, "300s")  # 60/min x 5 min
    assert surge["filter"].endswith('metric.label.code=one_of("unauthenticated", "app_check_failed")')
    board = json.loads(of_type(runs["prod_emails"], DASHBOARD)[0]["inputs"]["dashboardJson"])
    (chart,) = [t["widget"] for t in board["mosaicLayout"]["tiles"] if t["widget"]["title"] == CALLERS_CHART]
    (series,) = chart["xyChart"]["dataSets"]
    assert series["timeSeriesQuery"]["timeSeriesFilter"]["filter"].endswith(
        'metric.label.code=one_of("unauthenticated", "app_check_failed", "auth_unavailable")')
    assert series["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["groupByFields"] == ["metric.label.code"]
    fn_codes, platform = found["Token function failing"]
    assert 'metric.type="run.googleapis.com/request_count"' in platform["filter"]
    assert 'resource.label.service_name="outspeed-token-prod"' in platform["filter"]
    assert 'metric.label.response_code=one_of("500", "503")' in platform["filter"]


def test_config_tunes_thresholds_windows_and_switches_alerts_off(runs):
    run = runs["prod_tuned"]
    found = alerts(run)
    # spend watch, Armor and unauthenticated surge (0) are off; caller verification is not a threshold
    assert set(found) == BASE_ALERTS | {AUTH_DOWN}
    assert "outspeed-token-prod-armor-denials" in metric_names(run)  # the Armor chart keeps its metric
    board = json.loads(of_type(run, DASHBOARD)[0]["inputs"]["dashboardJson"])
    assert any("Armor" in t["widget"]["title"] for t in board["mosaicLayout"]["tiles"])
    # upstreamMinCalls 0: the ratio alone decides, so one condition and no AND.
    (ratio,) = [c["conditionThreshold"] for c in found["Outspeed failing"]["inputs"]["conditions"]]
    assert found["Outspeed failing"]["inputs"]["combiner"] == "OR"
    assert ratio["thresholdValue"] == 0.25 and ratio["aggregations"][0]["alignmentPeriod"] == "1800s"
    (key,) = [c["conditionThreshold"] for c in found["Outspeed key rejected"]["inputs"]["conditions"]]
    assert key["aggregations"][0]["alignmentPeriod"] == "900s"
    links = found["Outspeed key rejected"]["inputs"]["documentation"]["links"]
    assert links == [{"displayName": "runbook",
                      "url": "https://github.com/acme/outspeed-token/blob/main/docs/operations.md#outspeed-key-rejected"}]


def test_the_edge_not_the_stack_name_decides_the_armor_watch(runs):
    run = runs["dev_with_edge"]
    assert "outspeed-token-dev-armor-denials" in metric_names(run)
    assert ARMOR in alerts(run)
    assert CALLER_ALERTS <= set(alerts(run))  # callerAuth, not the stack name, decides the caller watch
    (armor_metric,) = [r for r in of_type(run, METRIC) if r["inputs"]["name"].endswith("armor-denials")]
    (policy,) = of_type(run, "gcp:compute/securityPolicy:SecurityPolicy")
    assert f'jsonPayload.enforcedSecurityPolicy.name="{policy["inputs"]["name"]}"' in armor_metric["inputs"]["filter"]


def test_resources_are_children_of_the_component_and_wait_for_what_they_need(runs):
    run = runs["prod_emails"]
    component = [r for r in run["resources"] if r["type"] == "outspeed-token:infra:Monitoring"]
    assert len(component) == 1
    urn = component[0]["urn"]
    apis = {r["inputs"]["service"]: r["urn"] for r in of_type(run, API)}
    metrics = [r["urn"] for r in of_type(run, METRIC)]
    for r in run["resources"]:
        if r["type"] in MONITORING_TYPES:
            assert r["parent"] == urn, r["name"]
            assert {apis["logging.googleapis.com"], apis["monitoring.googleapis.com"]} <= set(r["dependencies"]), r["name"]
    # A condition on a log-based metric is refused until the metric exists.
    for r in of_type(run, ALERT) + of_type(run, DASHBOARD):
        assert set(metrics) <= set(r["dependencies"]), r["name"]


def test_alert_policies_wait_until_monitoring_knows_their_new_metrics(runs):
    """Monitoring answers 404 "Cannot find metric(s)" for up to 10 minutes after a log-based
    metric is created, and the provider does not retry: policies wait on a sleep after the
    metrics, which runs again whenever a metric is created anew (its name is a trigger)."""
    from outspeed_token.monitoring import METRICS_SETTLE

    run = runs["prod_emails"]
    (sleep,) = [r for r in of_type(run, "time:index/sleep:Sleep") if r["name"].startswith("monitoring-")]
    metrics = {r["inputs"]["name"]: r["urn"] for r in of_type(run, METRIC)}
    assert sleep["inputs"]["createDuration"] == METRICS_SETTLE == "600s"
    assert set(metrics.values()) <= set(sleep["dependencies"])
    assert sorted(sleep["inputs"]["triggers"].values()) == sorted(metrics)
    for r in of_type(run, ALERT):
        assert sleep["urn"] in r["dependencies"], r["name"]
    # The dashboard only displays metrics (an unknown one is an empty chart): it does not wait.
    assert sleep["urn"] not in of_type(run, DASHBOARD)[0]["dependencies"]


def test_dashboard_tiles_leave_zero_positions_out(runs):
    """The API omits zero-valued fields when it reads a dashboard back; a written 0 is a diff on every up."""
    for case in ("dev", "prod_emails"):
        tiles = json.loads(of_type(runs[case], DASHBOARD)[0]["inputs"]["dashboardJson"])["mosaicLayout"]["tiles"]
        assert all(t.get("xPos", 1) and t.get("yPos", 1) for t in tiles)
        assert {(t.get("xPos", 0), t.get("yPos", 0)) for t in tiles} >= {(0, 0), (24, 0), (0, 16), (24, 16)}


def test_dev_and_prod_names_do_not_collide_in_one_project(runs):
    assert not metric_names(runs["dev"]) & metric_names(runs["prod_emails"])
    dev_titles = {a["inputs"]["displayName"] for a in of_type(runs["dev"], ALERT)}
    prod_titles = {a["inputs"]["displayName"] for a in of_type(runs["prod_emails"], ALERT)}
    assert not dev_titles & prod_titles


def _make_plan(*args: str) -> str:
    import os
    import subprocess
    import sys

    from tools.plan import ROOT
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "PULUMI_"))}
    proc = subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_plan_prints_each_alert_with_condition_threshold_and_channels():
    out = _make_plan("prod", "--set", "monitoring={alertEmails: [oncall@example.com]}")
    for title, severity in [("Outspeed key rejected", "CRITICAL"), ("Outspeed failing", "ERROR"),
                            ("Token function failing", "ERROR"), (SPEND, "WARNING"), (ARMOR, "WARNING"),
                            (AUTH_DOWN, "ERROR"), (UNAUTHENTICATED, "WARNING")]:
        assert f"outspeed-token-prod: {title} [{severity}]" in out
    assert "when any upstream_auth_failed in 5 min: value > 0 per 300s, held 60s" in out
    assert "when upstream failures above 0.1 of calls over 10 min: value > 0.1 (ratio to denominator) per 600s" in out
    assert "when more than 1000 keys minted in 60 min: value > 1000 per 3600s" in out
    assert out.count("fires only while ALL of these hold at once:") == 1  # under the ratio alert only
    assert (out.index("outspeed-token-prod: Outspeed failing [ERROR]") < out.index("fires only while ALL")
            < out.index("when upstream failures above"))
    assert "when at least 10 calls to Outspeed in 10 min: value > 9 per 600s" in out
    assert 'metric.label.code="upstream_auth_failed"' in out
    assert "email oncall@example.com" in out
    assert out.count("notifies monitoring-email-") == 7 and "notifies nobody" not in out
    assert "dashboardUrl" in out and "logsUrl" in out


def test_make_plan_says_when_nobody_is_notified():
    out = _make_plan("dev")
    assert out.count("notifies nobody (no monitoring.alertEmails)") == 4  # no Armor alert without the edge
    assert "WARNING: outspeed-token:monitoring.alertEmails is empty" in out
    assert ARMOR not in out


def test_documented_costs_count_the_conditions_each_stack_really_plans(runs):
    """The alerting price is per condition, so docs/operations.md's count must match the plans."""
    import re

    from tools.plan import ROOT
    costs = (ROOT / "docs" / "operations.md").read_text().split("## What monitoring costs", 1)[1].split("\n## ", 1)[0]
    assert "$1.50 per condition per month" in costs
    prod, dev = map(int, re.search(r"(\d+) conditions in prod and (\d+) in\s+dev", costs).groups())

    def conditions(run):
        return sum(len(a["inputs"]["conditions"]) for a in of_type(run, ALERT))

    assert (conditions(runs["prod_emails"]), conditions(runs["dev"])) == (prod, dev)
    assert f"${prod * 1.5:.2f}" in costs and f"${dev * 1.5:.0f}" in costs


def test_count_charts_plot_rates_whatever_the_zoom(runs):
    """minAlignmentPeriod is only a lower bound: on a week-long view the console aligns over longer
    periods, so a summed count would silently change unit. Every counter chart is a rate per second."""
    board = json.loads(of_type(runs["prod_emails"], DASHBOARD)[0]["inputs"]["dashboardJson"])
    counters = 0
    for tile in board["mosaicLayout"]["tiles"]:
        chart = tile["widget"]["xyChart"]
        for data_set in chart["dataSets"]:
            query = data_set["timeSeriesQuery"]["timeSeriesFilter"]
            kind = query["filter"].split('metric.type="', 1)[1].split('"', 1)[0]
            if kind.endswith(("-requests", "-armor-denials", "/request_count")):
                counters += 1
                assert query["aggregation"]["perSeriesAligner"] == "ALIGN_RATE", tile["widget"]["title"]
                assert "per second" in tile["widget"]["title"] and chart["yAxis"]["label"].endswith("/s")
    assert counters == 7  # minted, refusals, upstream failures, function failures x2, callers refused, Armor
