"""Every resource the stacks register, checked offline against Google's published API rules
(tests/infra/conformance.py): mocks accept anything, the API does not.

Adding a variant is one line in VARIANTS: (stack, overrides)."""
from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import conformance as c
from infra_helpers import run

EMAILS = ["oncall@example.com"]
RUNBOOK = "https://github.com/acme/outspeed-token/blob/main/docs/operations.md"

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    # every optional monitoring resource and field: channels, runbook links, a ratio without the floor
    "prod-notified": ("prod", {"monitoring": {"alertEmails": EMAILS, "runbookUrl": RUNBOOK, "upstreamMinCalls": 0,
                                              "alertWindowMinutes": 2, "upstreamErrorWindowMinutes": 1440}}),
    # the spend ceiling: Memorystore on its own network with Direct VPC egress, and an external store
    "prod-quotas": ("prod", {"quotas": {"perCaller": [{"count": 5, "windowSeconds": 3600}],
                                        "global": [{"count": 500, "windowSeconds": 3600}], "store": "memorystore"}}),
    "dev-quotas-external": ("dev", {"quotas": {"global": [{"count": 100, "windowSeconds": 60}], "store": "external",
                                               "redisUrl": "rediss://:conformance-pw@redis.example.net:6380/2"}}),
    # App Check replay protection: the verifier grant and the App Check API
    "prod-replay": ("prod", {"callerAuth": {"appCheck": {"projectNumber": "123456789012", "consume": True}}}),
}


@pytest.fixture(scope="module")
def variant_runs(stack_runs) -> dict[str, dict[str, Any]]:
    """dev and prod reuse the session's runs; the other variants run here, two at a time."""
    extra = [name for name, (stack, overrides) in VARIANTS.items() if overrides or stack not in stack_runs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(extra, pool.map(lambda n: run(VARIANTS[n][0], VARIANTS[n][1]), extra)))
    results.update({n: stack_runs[VARIANTS[n][0]] for n in VARIANTS if n not in results})
    for name, result in results.items():
        assert result["error"] is None, f"{name}: {result['error']}"
    return results


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_registered_resource_meets_the_apis_rules(variant_runs, variant):
    report = c.check_run(variant_runs[variant])
    assert report.violations == [], "\n".join(report.violations)
    assert report.checked_fields > 100  # the walk really reached the fields


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_resource_type_is_mapped_or_said_why_not(variant_runs, variant):
    types = {r["type"] for r in variant_runs[variant]["resources"] if r["custom"]}
    assert types <= set(c.KINDS) | set(c.NOT_GOOGLE), types - set(c.KINDS) - set(c.NOT_GOOGLE)


def test_the_mapping_names_real_documents_schemas_and_fields():
    for typ, kind in c.KINDS.items():
        schemas = c.document(kind.api)["schemas"]
        if kind.schema:
            assert kind.schema in schemas, (typ, kind.schema)
        for api, schema in kind.json_strings.values():
            assert schema in c.document(api)["schemas"], (typ, schema)
    for (api, schema, prop) in c.FIELD_RULES:
        node = c.document(api)["schemas"][schema.split(".")[0]]
        for part in [*schema.split(".")[1:], prop]:
            node = node["properties"][part]
    for (api, schema, prop) in c.NOT_ENCODED:
        assert prop in c.document(api)["schemas"][schema]["properties"], (api, schema, prop)
    for (api, schema) in c.OBJECT_RULES:
        assert schema in c.document(api)["schemas"], (api, schema)


def _resource(typ: str, inputs: dict[str, Any], name: str = "r") -> dict[str, Any]:
    return {"type": typ, "name": name, "custom": True, "inputs": inputs}


def _violations(resource: dict[str, Any]) -> list[str]:
    report = c.Report()
    c.check_resource(resource, report)
    return report.violations


# The alert condition shape outspeed_token/monitoring.py planned before issue 21: duration 0s with
# evaluationMissingData. The Monitoring API answers 400 "Conditions setting evaluation_missing_data
# must have a non-zero duration"; the check must say so.
OLD_CONDITION = {
    "displayName": "any upstream_auth_failed in 5 min",
    "conditionThreshold": {
        "filter": 'metric.type="logging.googleapis.com/user/x-requests" AND resource.type="cloud_run_revision"',
        "aggregations": [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_SUM", "crossSeriesReducer": "REDUCE_SUM"}],
        "comparison": "COMPARISON_GT", "thresholdValue": 0,
        "duration": "0s", "evaluationMissingData": "EVALUATION_MISSING_DATA_INACTIVE"}}
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"


def _policy(condition: dict[str, Any]) -> dict[str, Any]:
    return _resource(ALERT, {"project": "p", "displayName": "x: y", "combiner": "OR", "severity": "ERROR",
                             "conditions": [condition]})


def test_the_old_alert_condition_is_reported():
    problems = _violations(_policy(OLD_CONDITION))
    assert len(problems) == 1 and "evaluationMissingData" in problems[0] and "60 seconds" in problems[0], problems


def test_todays_alert_conditions_pass_the_rule_that_refused_the_old_ones(variant_runs):
    for variant, result in variant_runs.items():
        for policy in (r for r in result["resources"] if r["type"] == ALERT):
            for condition in policy["inputs"]["conditions"]:
                threshold = condition["conditionThreshold"]
                assert c._missing_data_needs_a_minute(threshold) is None, (variant, policy["name"], threshold)
                assert c.seconds(threshold["duration"]) >= 60


def _with(threshold_changes: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    condition = copy.deepcopy(OLD_CONDITION)
    t = condition["conditionThreshold"]
    t["duration"] = "60s"
    for key in drop:
        t.pop(key)
    t.update(threshold_changes)
    return condition


@pytest.mark.parametrize("changes,drop,phrase", [
    ({"duration": "90s"}, (), "multiple of a minute"),
    ({"duration": "5m"}, (), "not a duration"),
    ({"comparison": "GREATER"}, (), "is not one of"),
    ({"thresholdValue": "0"}, (), "expected a number"),
    ({"filter": 'metric.type="logging.googleapis.com/user/x"'}, (), "names no resource.type"),
    ({"filter": "x" * 2049}, (), "2048"),
    ({"denominatorFilter": 'resource.type="cloud_run_revision"',
      "denominatorAggregations": [{"alignmentPeriod": "300s", "perSeriesAligner": "ALIGN_SUM"}]}, (), "names no metric.type"),
    ({"denominatorFilter": 'metric.type="m"',
      "denominatorAggregations": [{"alignmentPeriod": "600s", "perSeriesAligner": "ALIGN_SUM"}]}, (), "same alignment period"),
    ({"aggregations": [{"alignmentPeriod": "30s", "perSeriesAligner": "ALIGN_SUM"}]}, (), "at least 60 seconds"),
    ({"aggregations": [{"alignmentPeriod": "90060s", "perSeriesAligner": "ALIGN_SUM"}]}, (), "90000s"),
    ({"aggregations": [{"perSeriesAligner": "ALIGN_SUM"}]}, (), "without an alignmentPeriod"),
    ({"aggregations": [{"alignmentPeriod": "60s", "crossSeriesReducer": "REDUCE_SUM"}]}, (), "crossSeriesReducer"),
    ({"aggregations": [{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_NONE",
                        "crossSeriesReducer": "REDUCE_SUM"}]}, (), "crossSeriesReducer"),
    ({"evaluationMissingData": "EVALUATION_MISSING_DATA_SOMETIMES"}, (), "is not one of"),
    ({"triggerCount": 1}, (), "no such field"),
], ids=["duration-not-whole-minutes", "duration-format", "enum", "type", "no-resource-type", "filter-length",
        "denominator-metric-type", "ratio-periods", "period-minimum", "period-alerting-cap", "aligner-needs-period",
        "reducer-needs-aligner", "reducer-align-none", "missing-data-enum", "unknown-field"])
def test_each_alert_rule_reports_a_violating_condition(changes, drop, phrase):
    problems = _violations(_policy(_with(changes, drop)))
    assert any(phrase in p for p in problems), problems
    assert _violations(_policy(_with({}))) == []  # the same condition without the change passes


@pytest.mark.parametrize("inputs,phrase", [
    ({"displayName": "x" * 513}, "512"),
    ({"userLabels": {"Deployment": "x"}}, "label key"),
    ({"userLabels": {"deployment": "Prod!"}}, "label value"),
    ({"documentation": {"content": "x" * 8193, "mimeType": "text/markdown"}}, "8192"),
    ({"documentation": {"content": "x", "mimeType": "text/html"}}, "text/markdown"),
    ({"documentation": {"content": "x", "links": [{"displayName": "", "url": "https://a"}]}}, "1-63"),
    ({"documentation": {"content": "x", "links": [{"displayName": "l", "url": "https://a"}] * 4}}, "at most 3"),
    ({"severity": "SEVERE"}, "is not one of"),
    ({"alertStrategy": {"autoClose": "30m"}}, "not a duration"),
    ({"name": "projects/p/alertPolicies/1"}, None),  # output-only? name is settable on update: no violation expected
], ids=["name-length", "label-key", "label-value", "content-length", "mime", "link-name", "links", "severity",
        "auto-close", "name"])
def test_each_policy_rule_reports_a_violating_policy(inputs, phrase):
    policy = _policy(_with({}))
    policy["inputs"].update(inputs)
    problems = _violations(policy)
    if phrase is None:
        assert problems == []
    else:
        assert any(phrase in p for p in problems), problems


def _dashboard(tiles: list[dict[str, Any]], columns: int = 48, **extra: Any) -> dict[str, Any]:
    return _resource("gcp:monitoring/dashboard:Dashboard", {"project": "p", "dashboardJson": json.dumps(
        {"displayName": "d", "mosaicLayout": {"columns": columns, "tiles": tiles}, **extra})})


TILE = {"width": 24, "height": 16, "xPos": 24, "yPos": 16,
        "widget": {"title": "t", "xyChart": {"dataSets": [{"plotType": "LINE", "minAlignmentPeriod": "60s",
                   "timeSeriesQuery": {"timeSeriesFilter": {"filter": 'metric.type="m"', "aggregation": {
                       "alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM"}}}}]}}}


@pytest.mark.parametrize("change,phrase", [
    ({"xPos": 0}, "dropped by the API"),
    ({"yPos": 0}, "dropped by the API"),
    ({"xPos": -1}, "cannot be negative"),
    ({"width": 0}, "dropped by the API"),
    ({"xPos": 40}, "exceeds 48 columns"),
    ({"widget": {"title": "t", "xyChart": {"dataSets": [{"plotType": "PIE"}]}}}, "is not one of"),
    ({"widget": {"title": "t", "xyChart": {"dataSets": [{"timeSeriesQuery": {"timeSeriesFilter": {
        "filter": "m", "aggregation": {"alignmentPeriod": "60s", "crossSeriesReducer": "REDUCE_SUM"}}}}]}}},
     "crossSeriesReducer"),
    ({"widget": {"title": "t", "pieChart3d": {}}}, "no such field"),
], ids=["x-zero", "y-zero", "x-negative", "width-zero", "beyond-columns", "plot-enum", "chart-aggregation",
        "unknown-widget"])
def test_each_dashboard_rule_reports_a_violating_tile(change, phrase):
    assert _violations(_dashboard([TILE])) == []
    problems = _violations(_dashboard([{**TILE, **change}]))
    assert any(phrase in p for p in problems), problems


def test_dashboard_columns_and_json_are_checked():
    assert any("between 1 and 48" in p for p in _violations(_dashboard([], columns=49)))
    broken = _resource("gcp:monitoring/dashboard:Dashboard", {"project": "p", "dashboardJson": "{"})
    assert any("not JSON" in p for p in _violations(broken))


_ALL = {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}
_DEFAULT_RULE = {"priority": 2147483647, "action": "allow", "match": _ALL}


@pytest.mark.parametrize("typ,inputs,phrase", [
    ("gcp:serviceaccount/account:Account", {"project": "p", "accountId": "outspeed-token-a-very-long-stack-run"}, "6-30"),
    ("gcp:serviceaccount/account:Account", {"project": "p", "accountId": "abc"}, "6-30"),
    ("gcp:serviceaccount/account:Account", {"project": "p", "accountId": "run-token-"}, "does not match"),
    ("gcp:serviceaccount/account:Account", {"project": "p", "accountId": "abcdef", "displayName": "x" * 101}, "100"),
    ("gcp:secretmanager/secret:Secret", {"project": "p", "secretId": "a/b", "replication": {"auto": {}}}, "does not match"),
    ("gcp:secretmanager/secret:Secret", {"project": "p", "secretId": "a", "replication": {"everywhere": {}}},
     "no such field"),
    ("gcp:cloudfunctionsv2/function:Function", {"project": "p", "location": "l", "name": "fn"}, "4-63"),
    ("gcp:cloudfunctionsv2/function:Function",
     {"project": "p", "location": "l", "name": "token", "serviceConfig": {"ingressSettings": "ALLOW_GCLB"}}, "is not one of"),
    ("gcp:cloudfunctionsv2/function:Function",
     {"project": "p", "location": "l", "name": "token", "buildConfig": {"dockerRepository": "us-docker.pkg.dev/p/r"}},
     "projects/{project}"),
    ("gcp:cloudfunctionsv2/function:Function",
     {"project": "p", "location": "l", "name": "token", "serviceConfig": {"uri": "https://x"}}, "output-only"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "/requests", "filter": "f"}, "does not match"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "r", "filter": "f",
                                   "metricDescriptor": {"metricKind": "COUNTER"}}, "is not one of"),
    ("gcp:compute/backendService:BackendService", {"project": "p", "name": "Backend"}, "pattern"),
    ("gcp:compute/globalForwardingRule:GlobalForwardingRule", {"project": "p", "name": "fr", "ipProtocol": "QUIC"},
     "is not one of"),
    ("gcp:compute/securityPolicy:SecurityPolicy",
     {"project": "p", "name": "armor", "rules": [{"priority": "high", "action": "allow"}]}, "expected an integer"),
    ("gcp:projects/iAMMember:IAMMember", {"project": "p", "role": "storage.objectViewer", "member": "user:a@b"},
     "does not match"),
    ("gcp:projects/iAMMember:IAMMember", {"project": "p", "role": "roles/viewer", "member": "a@b"}, "documented forms"),
    ("gcp:projects/service:Service", {"project": "p", "service": "a/b"}, "does not match"),
    ("gcp:storage/bucket:Bucket", {"project": "p", "location": "US", "publicAccessPrevention": "on"}, "does not match"),
    ("gcp:redis/instance:Instance", {"project": "p", "region": "r", "name": "Quota"}, "does not match"),
    ("gcp:example/unknown:Thing", {"a": 1}, "no API mapping"),
    ("gcp:compute/backendService:BackendService", {"project": "p", "name": "b", "selfLink": "x"}, "output-only"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 1000, "action": "deny(429)", "match": {"expr": {"expression": "true"}}}, _DEFAULT_RULE]}, "403, 404"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 2000, "action": "rate_based_ban", "match": _ALL}, _DEFAULT_RULE]}, "without rateLimitOptions"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 2000, "action": "throttle", "match": _ALL, "rateLimitOptions": {
            "conformAction": "allow", "exceedAction": "deny(429)", "banDurationSec": 60,
            "rateLimitThreshold": {"count": 1, "intervalSec": 60}}}, _DEFAULT_RULE]}, "ban settings"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 2000, "action": "rate_based_ban", "match": _ALL, "rateLimitOptions": {
            "conformAction": "deny(403)", "exceedAction": "deny(500)"}}, _DEFAULT_RULE]}, "allow"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 1000, "action": "allow", "match": {"versionedExpr": "SRC_IPS_V1"}}, _DEFAULT_RULE]}, "come together"),
    ("gcp:compute/securityPolicy:SecurityPolicy", {"project": "p", "name": "armor", "rules": [
        {"priority": 1000, "action": "allow", "match": _ALL}]}, "no default rule"),
    ("gcp:compute/sSLPolicy:SSLPolicy", {"project": "p", "name": "tls", "profile": "MODERN", "minTlsVersion": "TLS_1_3"},
     "RESTRICTED"),
    ("gcp:compute/globalForwardingRule:GlobalForwardingRule", {"project": "p", "name": "fr", "portRange": "443",
                                                               "ipProtocol": "ICMP"}, "portRange with"),
    ("gcp:compute/backendService:BackendService", {"project": "p", "name": "b", "logConfig": {"sampleRate": 1}},
     "without enable"),
    ("gcp:compute/backendService:BackendService", {"project": "p", "name": "b", "logConfig": {"enable": True,
                                                                                             "sampleRate": 2}}, "[0, 1]"),
    ("gcp:compute/uRLMap:URLMap", {"project": "p", "name": "u", "defaultRouteAction": {"faultInjectionPolicy": {
        "abort": {"httpStatus": 600, "percentage": 100}}}}, "200..599"),
    ("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup",
     {"project": "p", "region": "r", "name": "neg", "cloudRun": {"service": "Token_Fn"}}, "does not match"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "m", "filter": "f", "metricDescriptor": {
        "metricKind": "DELTA", "valueType": "DISTRIBUTION"}, "valueExtractor": "EXTRACT(jsonPayload.x)"}, "bucketOptions"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "m", "filter": "f", "metricDescriptor": {
        "metricKind": "DELTA", "valueType": "INT64", "labels": [{"key": "code"}]}}, "without an extractor"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "m", "filter": "f", "valueExtractor": "jsonPayload.x"},
     "does not match"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "m", "filter": "f", "bucketOptions": {
        "exponentialBuckets": {"numFiniteBuckets": 0, "growthFactor": 1, "scale": 0}}}, "greater than 1"),
    ("gcp:logging/metric:Metric", {"project": "p", "name": "m", "filter": "f", "metricDescriptor": {
        "metricKind": "DELTA", "valueType": "BOOL", "unit": "1"}}, "unit on a BOOL"),
    ("gcp:cloudfunctionsv2/function:Function", {"project": "p", "location": "l", "name": "token", "serviceConfig": {
        "directVpcNetworkInterfaces": [{"network": "a"}, {"network": "b"}]}}, "at most 1"),
    ("gcp:cloudfunctionsv2/function:Function", {"project": "p", "location": "l", "name": "token", "serviceConfig": {
        "directVpcNetworkInterfaces": [{"network": "a", "subnet": "b"}]}}, "no such field"),
    ("gcp:cloudfunctionsv2/function:Function", {"project": "p", "location": "l", "name": "token", "buildConfig": {
        "build": "projects/p/locations/l/builds/1"}}, "output-only"),
    ("gcp:monitoring/notificationChannel:NotificationChannel", {"project": "p", "type": "email",
                                                                "displayName": "x" * 513}, "512"),
])
def test_each_resource_rule_reports_a_violating_input(typ, inputs, phrase):
    problems = _violations(_resource(typ, inputs))
    assert any(phrase in p for p in problems), problems


def test_repository_cleanup_policies_are_checked_as_the_apis_map():
    policy = {"id": "keep-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 5}}
    repo = {"project": "p", "location": "l", "repositoryId": "r", "format": "DOCKER", "cleanupPolicies": [policy]}
    assert _violations(_resource("gcp:artifactregistry/repository:Repository", repo)) == []
    repo["cleanupPolicies"] = [{**policy, "action": "PURGE"}]
    assert any("is not one of" in p for p in _violations(_resource("gcp:artifactregistry/repository:Repository", repo)))


def test_a_field_the_mapping_does_not_know_is_reported_not_skipped():
    problems = _violations(_resource("gcp:storage/bucket:Bucket", {"project": "p", "location": "US",
                                                                   "softDeletePolicyX": {"retention": 0}}))
    assert any("softDeletePolicyX: no such field" in p for p in problems), problems
    problems = _violations(_resource("gcp:projects/service:Service", {"project": "p", "service": "a.googleapis.com",
                                                                      "extra": True}))
    assert any("extra: not mapped" in p for p in problems), problems


def test_an_https_redirect_behind_the_https_proxy_is_reported(variant_runs):
    """A rule across resources: the :80 redirect map must hang only off the HTTP proxy."""
    prod = copy.deepcopy(variant_runs["prod"])
    assert c._https_redirect_only_behind_http_proxies(prod) == []
    https_proxy = next(r for r in prod["resources"] if r["type"] == "gcp:compute/targetHttpsProxy:TargetHttpsProxy")
    redirect = next(r for r in prod["resources"] if r["name"] == "edge-http-redirect")
    https_proxy["inputs"]["urlMap"] = f"projects/p/urlmaps/{redirect['inputs']['name']}"
    assert any("httpsRedirect behind a TargetHttpsProxy" in p for p in c.check_run(prod).violations)
