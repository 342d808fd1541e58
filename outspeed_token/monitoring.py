"""Operations as code: log-based metrics, alert policies, a dashboard and a spend watch.

Two halves in one module:
- config: `monitoring` (Pulumi.yaml) -> `MonitoringSettings` via `parse_monitoring`, pure
  (no Pulumi runtime, no pulumi_gcp), so `outspeed_token.settings.parse` can call it;
- the `Monitoring` component, which builds the cloud resources from those settings.

Everything is derived from the function's own JSON log line (function/token_log.py). Cloud
Logging turns a structured stdout line into a LogEntry: `severity`, `message`, `httpRequest`
and `logging.googleapis.com/trace` become LogEntry fields (httpRequest.status, ...); every
other key lands under jsonPayload (jsonPayload.code, jsonPayload.latencyMs). A 2nd-gen
function logs as resource.type="cloud_run_revision" with resource.labels.service_name = its
Cloud Run service. tests/monitoring checks every field path used here against real lines.

Checked against Google's documentation: log-based metric descriptors (DELTA INT64 counters,
DELTA DISTRIBUTION + value_extractor + bucket_options), alert filters needing only metric.type,
ratio conditions (same alignment period and labels on both sides), the 25 h alignment-period cap
for alerting, starts_with in Monitoring filters, Cloud Armor's enforcedSecurityPolicy.outcome
="DENY" request-log filter, ALIGN_DELTA + REDUCE_PERCENTILE_* on distributions (Google's own
Cloud Run dashboard sample). Seen only in public configs, not in a Google page we could read:
one_of(...), the response_code label of run.googleapis.com/request_count, http_load_balancer as
the LB request log's resource type, and the console's monitoring/dashboards/builder/<id> URL.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence
from urllib.parse import quote

import pulumi

from .monitoring_settings import (ALERT_DURATION_SECONDS, FIELDS, MAX_WINDOW_MINUTES, MIN_WINDOW_MINUTES,  # noqa: F401
                                  MonitoringSettings, parse_monitoring)

MONITORING_APIS = ("logging.googleapis.com", "monitoring.googleapis.com")
# New log-based metrics are unknown to Monitoring for a while: creating a policy on one answers 404
# "Cannot find metric(s) ... it could take up to 10 minutes to become available" and the provider
# does not retry (hashicorp/terraform-provider-google#11102). Policies wait this long after their
# metrics are created (again only when a metric is created anew).
METRICS_SETTLE = "600s"

# The function's codes (DESIGN.md error table) that each signal is made of.
MINTED = "ok"
KEY_REJECTED = ("upstream_auth_failed",)
UPSTREAM_FAILED = ("upstream_error", "upstream_bad_response", "upstream_unreachable", "upstream_timeout")
# Every outcome of a request that was sent to (or tried to reach) Outspeed: the ratio's denominator.
UPSTREAM_CALLED = ("ok", "agent_not_found", "upstream_rate_limited", *KEY_REJECTED, *UPSTREAM_FAILED)
FUNCTION_FAILED = ("internal_error", "not_configured")
# Caller authentication: the signing keys could not be had (503), or the caller's token failed (401).
AUTH_UNAVAILABLE = ("auth_unavailable",)
CALLER_REFUSED = ("unauthenticated", "app_check_failed")
# 5xx the Cloud Run platform counts for the service that are not Outspeed's fault: a crash or
# an unexpected exception (500), no instance could take the request (503). The function itself
# answers 502/504 for Outspeed failures, which the "Outspeed failing" alert already covers.
PLATFORM_FAILED_STATUSES = ("500", "503")
# The function's `quota` log field (DESIGN.md "Spend ceiling"): which budget refused, or the
# store failing (closed: 503 `quota_unavailable`; failOpen: minted unchecked).
QUOTA_CALLER, QUOTA_GLOBAL, QUOTA_STORE_FAILED = "caller", "global", ("unavailable", "open")

# Latency histogram: 1 ms .. ~180 s in x1.4 steps (percentiles within 40%); enough for the
# 10 s upstream timeout and the platform's 30 s request timeout.
LATENCY_BUCKETS = {"num_finite_buckets": 36, "growth_factor": 1.4, "scale": 1.0}

# Where the alerts' runbooks live: each under a heading whose GitHub slug is its AlertSpec.anchor.
README_SECTION = "docs/operations.md, section \"The alerts\""


# --- filters and queries (pure: tests evaluate them against real log lines) -------------------

def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def function_log_filter(service_name: str) -> str:
    """The function's own request lines: its Cloud Run service, and a `code` (the platform's
    request log for the same service has no jsonPayload, so it never matches)."""
    return (f'resource.type="cloud_run_revision" AND resource.labels.service_name="{service_name}" '
            f'AND jsonPayload.code=~"^[a-z_]+$"')


def armor_log_filter(policy_name: str) -> str:
    """Load balancer request lines where this stack's Cloud Armor policy denied the request
    (origin deny 403, rate-based ban 429)."""
    return (f'resource.type="http_load_balancer" AND jsonPayload.enforcedSecurityPolicy.name="{policy_name}" '
            f'AND jsonPayload.enforcedSecurityPolicy.outcome="DENY"')


def logs_query(service_name: str) -> str:
    return f'resource.type="cloud_run_revision"\nresource.labels.service_name="{service_name}"'


def logs_url(project: str, service_name: str) -> str:
    """A Logs Explorer link showing this function's logs (its lines and the platform's)."""
    return f"https://console.cloud.google.com/logs/query;query={quote(logs_query(service_name), safe='')}?project={project}"


def dashboard_url(project: str, dashboard_id: str) -> str:
    return f"https://console.cloud.google.com/monitoring/dashboards/builder/{dashboard_id.split('/')[-1]}?project={project}"


def metric_type(metric_name: str) -> str:
    return f"logging.googleapis.com/user/{metric_name}"


def _label_filter(metric_name: str, label: str, values: Sequence[str]) -> str:
    """One of the function's log-based metrics, where `label` is one of `values`."""
    match = f'"{values[0]}"' if len(values) == 1 else f"one_of({_quoted(values)})"
    return (f'metric.type="{metric_type(metric_name)}" AND resource.type="cloud_run_revision" '
            f"AND metric.label.{label}={match}")


def codes_filter(requests_metric: str, codes: Sequence[str]) -> str:
    return _label_filter(requests_metric, "code", codes)


def platform_failed_filter(service_name: str) -> str:
    return ('metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
            f'AND resource.label.service_name="{service_name}" '
            f"AND metric.label.response_code=one_of({_quoted(PLATFORM_FAILED_STATUSES)})")


def quota_log_filter(service_name: str) -> str:
    """The function's request lines that name a budget or the store (`quota` field)."""
    return f'{function_log_filter(service_name)} AND jsonPayload.quota=~"^[a-z]+$"'


def quota_filter(quota_metric: str, quotas: Sequence[str]) -> str:
    return _label_filter(quota_metric, "quota", quotas)


def armor_metric_filter(armor_metric: str) -> str:
    # An alert filter "must specify the metric type and the resource type" (monitoring.v3
    # MetricThreshold.filter; without resource.type the API answers 400). A log-based metric's
    # points carry the log entry's resource: the load balancer's request log is http_load_balancer.
    return f'metric.type="{metric_type(armor_metric)}" AND resource.type="http_load_balancer"'


def _sum(window_seconds: int, group_by: Sequence[str] = ()) -> dict[str, Any]:
    agg = {"alignment_period": f"{window_seconds}s", "per_series_aligner": "ALIGN_SUM",
           "cross_series_reducer": "REDUCE_SUM"}
    if group_by:
        agg["group_by_fields"] = list(group_by)
    return agg


@dataclass(frozen=True)
class AlertSpec:
    """One alert policy, in plain data (the component turns it into gcp.monitoring.AlertPolicy)."""
    key: str  # resource-name suffix and README anchor
    title: str
    severity: str
    conditions: tuple[dict[str, Any], ...]  # condition_threshold arguments plus "display_name"
    what: str
    todo: str
    anchor: str
    combiner: str = "OR"  # "AND": every condition must hold at once


def _above(display_name: str, filter_: str, window_seconds: int, threshold: float = 0) -> dict[str, Any]:
    """A condition: the sum of `filter_` over the window above `threshold` (0: any at all)."""
    return {"display_name": display_name, "filter": filter_, "aggregations": [_sum(window_seconds)],
            "comparison": "COMPARISON_GT", "threshold_value": threshold}


def alert_specs(m: MonitoringSettings, service_name: str, requests_metric: str,
                armor_metric: Optional[str], quota_metric: Optional[str] = None) -> list[AlertSpec]:
    """The policies for these settings. `armor_metric` is None without the edge, `quota_metric`
    without quotas."""
    w = m.alert_window_minutes * 60
    specs = [
        AlertSpec(
            "key-rejected", "Outspeed key rejected", "CRITICAL",
            (_above(f"any upstream_auth_failed in {m.alert_window_minutes} min",
                    codes_filter(requests_metric, KEY_REJECTED), w),),
            "Outspeed answered 401/403 to the function: the API key the stack deployed was revoked, rotated "
            "or mistyped. Every request now fails with 502 `upstream_auth_failed`; nobody can start a session.",
            "Create or copy a valid key in the Outspeed dashboard, then `pulumi config set --secret outspeedApiKey` "
            "(it prompts) and `pulumi up`: the stack stores a new secret version and redeploys the function pinned "
            "to it. Check with one request to the tokenUrl output.",
            "outspeed-key-rejected"),
        _upstream_failing(m, requests_metric),
        AlertSpec(
            "function-failing", "Token function failing", "ERROR",
            (_above(f"internal_error or not_configured in {m.alert_window_minutes} min",
                    codes_filter(requests_metric, FUNCTION_FAILED), w),
             _above(f"platform {'/'.join(PLATFORM_FAILED_STATUSES)} answers in {m.alert_window_minutes} min",
                    platform_failed_filter(service_name), w)),
            "The function itself failed: an unexpected exception (500 `internal_error`, logged with its traceback), "
            "no API key in its environment (500 `not_configured`), or Cloud Run answered 500/503 for it (a crash, "
            "no instance able to take the request, the caller-auth signing keys unreachable).",
            "Open the logsUrl output and look at severity ERROR lines (the traceback is in the message). "
            "`not_configured`: set the key (`pulumi config set --secret outspeedApiKey`, `pulumi up`). 503 with "
            "all instances busy: raise `maxInstances` or `concurrency`. A bug: roll back with `pulumi up` "
            "from the last good commit.",
            "token-function-failing"),
    ]
    if m.spend_watch:
        specs.append(AlertSpec(
            "spend-watch", "Keys minted above the hourly budget", "WARNING",
            ({"display_name": f"more than {m.mints_per_hour_alert} keys minted in 60 min",
              "filter": codes_filter(requests_metric, (MINTED,)), "aggregations": [_sum(3600)],
              "comparison": "COMPARISON_GT", "threshold_value": m.mints_per_hour_alert},),
            f"More than {m.mints_per_hour_alert} ephemeral keys were minted in an hour. Each key can start a billed "
            "Outspeed session: this is either real growth or someone farming keys.",
            "Look at the dashboard's \"Keys minted\" chart and the log lines' `origin`/`agentId`/`forwardedFor` "
            "for a single source. Farming: tighten `rateLimit`, `allowedHostnames` and `callerAuth`. Growth: "
            "raise `monitoring.mintsPerHourAlert`.",
            "keys-minted-above-the-hourly-budget"))
    if armor_metric is not None and m.armor_alert:
        per_window = m.armor_denials_per_minute_alert * m.alert_window_minutes
        specs.append(AlertSpec(
            "armor-denials", "Cloud Armor denials surging", "WARNING",
            (_above(f"more than {per_window} Cloud Armor denials in {m.alert_window_minutes} min "
                    f"({m.armor_denials_per_minute_alert}/min)",
                    armor_metric_filter(armor_metric), w, per_window),),
            "The load balancer's Cloud Armor policy is denying many requests: IPs over `rateLimit` get 429 and a "
            "ban (rule 2000), browsers from Origins outside `allowedHostnames` get 403 (rule 1000).",
            "Look at the dashboard's \"Cloud Armor denials\" chart by rule, and the load balancer's request logs "
            "(`jsonPayload.enforcedSecurityPolicy.outcome=\"DENY\"`) for the client IPs. An attack: the policy is "
            "doing its job; add a deny rule for persistent sources if needed. Your own users: raise "
            "`rateLimit.requestsPerMinute` or add the hostname to `allowedHostnames`.",
            "cloud-armor-denials-surging"))
    if m.caller_checks:
        specs.append(AlertSpec(
            "auth-unavailable", "Caller verification unavailable", "ERROR",
            (_above(f"any auth_unavailable in {m.alert_window_minutes} min",
                    codes_filter(requests_metric, AUTH_UNAVAILABLE), w),),
            "The function answered 503 `auth_unavailable`: it could not fetch the signing keys (the ID-token "
            "issuer's discovery document or JWKS, or App Check's JWKS) and had none cached, so it turned callers "
            "away without looking at their tokens. Nobody served by such an instance can start a session.",
            "Open the logsUrl output: the lines' `authProblem` says which keys and why (`id_token: keys unavailable "
            "(...)`). Fetch the issuer's `/.well-known/openid-configuration` and JWKS yourself: the issuer down "
            "means waiting (the function retries after `Retry-After`); a wrong `callerAuth.idToken.issuer` or "
            "`jwksUri` (e.g. after a change of sign-in provider) means fixing it and `pulumi up`.",
            "caller-verification-unavailable"))
    if m.unauthenticated_alert:
        per_window = m.unauthenticated_per_minute_alert * m.alert_window_minutes
        specs.append(AlertSpec(
            "unauthenticated", "Unauthenticated callers surging", "WARNING",
            (_above(f"more than {per_window} unauthenticated or app_check_failed in "
                    f"{m.alert_window_minutes} min ({m.unauthenticated_per_minute_alert}/min)",
                    codes_filter(requests_metric, CALLER_REFUSED), w, per_window),),
            "Many callers were refused with 401: no valid ID token (`unauthenticated`) or App Check token "
            "(`app_check_failed`). Either someone is scripting the endpoint without credentials, or your own "
            "frontend stopped sending valid tokens (a release, an expired or misconfigured sign-in).",
            "Look at the dashboard's \"Callers refused\" chart and the log lines' `authProblem`, `origin` and "
            "`forwardedFor`. Many sources with `missing` tokens after a frontend release: fix the frontend. One "
            "source: Cloud Armor's `rateLimit` bans it; add a deny rule if it persists. Tokens `expired` or for "
            "another `aud`/`iss`: compare `callerAuth` with what the sign-in provider issues.",
            "unauthenticated-callers-surging"))
    if quota_metric is not None:
        # The global budget spent is an incident (every caller is refused until the window turns);
        # per-caller refusals are the ceiling working, a dashboard chart only.
        specs.append(AlertSpec(
            "global-budget", "Global mint budget reached", "ERROR",
            (_above(f"any global quota_exceeded in {m.alert_window_minutes} min",
                    quota_filter(quota_metric, (QUOTA_GLOBAL,)), w),),
            "The endpoint's global budget (`quotas.global`) is spent: every caller gets 429 `quota_exceeded` "
            "until the refusing window turns (`Retry-After`). Either real demand outgrew the budget or someone "
            "is minting keys as fast as the ceiling allows.",
            "Look at the dashboard's \"Keys minted\" and \"Per-caller budget refusals\" charts and the log lines' "
            "`subject`/`forwardedFor`: a few subjects using their whole per-caller budget are farming (tighten "
            "`quotas.perCaller`, disable those accounts); broad demand: raise `quotas.global` and `pulumi up`.",
            "global-mint-budget-reached"))
        specs.append(AlertSpec(
            "quota-store", "Quota store failing", "ERROR",
            (_above(f"quota_unavailable or unchecked (failOpen) mints in {m.alert_window_minutes} min",
                    quota_filter(quota_metric, QUOTA_STORE_FAILED), w),),
            "The function could not reach the quota store within its bound: with `failOpen: false` callers get "
            "503 `quota_unavailable` (nobody can start a session); with `failOpen: true` keys are minted without "
            "a budget check.",
            "Check the Memorystore instance (Cloud console: Memorystore; maintenance, memory) or your external "
            "store, and the function's log lines with `quota` `unavailable`. A changed AUTH string or CA needs "
            "`pulumi up` (the stack writes a new secret version and redeploys).",
            "quota-store-failing"))
    return specs


def _upstream_failing(m: MonitoringSettings, requests_metric: str) -> AlertSpec:
    """The failure ratio of calls to Outspeed, and (unless upstreamMinCalls is 0) a volume floor
    ANDed with it: at night one timeout among two calls is a ratio of 0.5, not an outage."""
    window = m.upstream_error_window_minutes * 60
    called = codes_filter(requests_metric, UPSTREAM_CALLED)
    conditions: list[dict[str, Any]] = [
        {"display_name": f"upstream failures above {m.upstream_error_ratio:g} of calls over "
                         f"{m.upstream_error_window_minutes} min",
         "filter": codes_filter(requests_metric, UPSTREAM_FAILED), "aggregations": [_sum(window)],
         "denominator_filter": called, "denominator_aggregations": [_sum(window)],
         "comparison": "COMPARISON_GT", "threshold_value": m.upstream_error_ratio}]
    if m.upstream_min_calls > 0:
        # "at least N" as "more than N-1": the threshold is compared with COMPARISON_GT only.
        conditions.append(
            {"display_name": f"at least {m.upstream_min_calls} calls to Outspeed in {m.upstream_error_window_minutes} min",
             "filter": called, "aggregations": [_sum(window)],
             "comparison": "COMPARISON_GT", "threshold_value": m.upstream_min_calls - 1})
    floor = (f" and at least {m.upstream_min_calls} calls were made in the window (fewer calls never page)"
             if m.upstream_min_calls > 0 else "")
    return AlertSpec(
        "upstream-failing", "Outspeed failing", "ERROR", tuple(conditions),
        "A share of the calls to Outspeed above the threshold failed" + floor + ": Outspeed answered 5xx or an "
        "unexpected 4xx (`upstream_error`), answered garbage (`upstream_bad_response`), could not be reached "
        "(`upstream_unreachable`) or did not answer in time (`upstream_timeout`).",
        "Check Outspeed's status page and the dashboard's \"Upstream failures\" chart; the function's log lines "
        "carry `upstreamStatus`. Nothing to redeploy unless `outspeedApiBase` is wrong; if Outspeed is merely "
        "slow, the function's `UPSTREAM_TIMEOUT_SECONDS` (10 s) bounds each wait.",
        "outspeed-failing", combiner="AND" if len(conditions) > 1 else "OR")


def documentation(spec: AlertSpec, runbook_url: str) -> str:
    """The runbook shown in the incident and the notification (markdown)."""
    where = f"[{README_SECTION}]({runbook_url}#{spec.anchor})" if runbook_url else f"{README_SECTION} → \"{spec.title}\""
    return f"### What happened\n{spec.what}\n\n### What to do\n{spec.todo}\n\nMore: {where}."


# Count charts plot a rate: a chart's minAlignmentPeriod is only a lower bound and the console
# widens the alignment period for long time ranges, so ALIGN_SUM would show counts per hour (or
# day) under a "per minute" title. ALIGN_RATE means the same thing at every zoom.
COUNT_ALIGNER = "ALIGN_RATE"


def _chart(title: str, data_sets: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    return {"title": title, "xyChart": {"dataSets": data_sets, "yAxis": {"label": unit, "scale": "LINEAR"}}}


def _series(filter_: str, aligner: str, reducer: str, group_by: Sequence[str] = (), plot: str = "LINE",
            legend: str = "") -> dict[str, Any]:
    aggregation = {"alignmentPeriod": "60s", "perSeriesAligner": aligner, "crossSeriesReducer": reducer}
    if group_by:
        aggregation["groupByFields"] = list(group_by)
    data = {"timeSeriesQuery": {"timeSeriesFilter": {"filter": filter_, "aggregation": aggregation}},
            "plotType": plot, "minAlignmentPeriod": "60s"}
    if legend:
        data["legendTemplate"] = legend
    return data


def dashboard(title: str, service_name: str, requests_metric: str, latency_metric: str,
              armor_metric: Optional[str], caller_checks: bool = False,
              quota_metric: Optional[str] = None) -> dict[str, Any]:
    """The dashboard's JSON (Monitoring API Dashboard resource, mosaic layout)."""
    requests = f'metric.type="{metric_type(requests_metric)}" AND resource.type="cloud_run_revision"'
    latency = f'metric.type="{metric_type(latency_metric)}" AND resource.type="cloud_run_revision"'
    widgets = [
        _chart("Keys minted per second", [_series(f'{requests} AND metric.label.code="{MINTED}"',
                                                  COUNT_ALIGNER, "REDUCE_SUM")], "keys/s"),
        _chart("Refusals by code per second (4xx)",
               [_series(f'{requests} AND metric.label.status=starts_with("4")', COUNT_ALIGNER, "REDUCE_SUM",
                        ["metric.label.code"], "STACKED_BAR")], "requests/s"),
        _chart("Upstream failures by code per second",
               [_series(codes_filter(requests_metric, (*KEY_REJECTED, *UPSTREAM_FAILED, "upstream_rate_limited")),
                        COUNT_ALIGNER, "REDUCE_SUM", ["metric.label.code"], "STACKED_BAR")], "requests/s"),
        _chart("Latency p50 / p95 / p99 (ms, every request)",
               [_series(latency, "ALIGN_DELTA", f"REDUCE_PERCENTILE_{p}", legend=f"p{p}") for p in (50, 95, 99)],
               "ms"),
        _chart("Instances", [_series('metric.type="run.googleapis.com/container/instance_count" '
                                     f'AND resource.type="cloud_run_revision" AND resource.label.service_name="{service_name}"',
                                     "ALIGN_MAX", "REDUCE_SUM", ["metric.label.state"], "STACKED_AREA")], "instances"),
        _chart("Function failures per second (internal_error, not_configured, platform 500/503)",
               [_series(codes_filter(requests_metric, FUNCTION_FAILED), COUNT_ALIGNER, "REDUCE_SUM",
                        ["metric.label.code"], "STACKED_BAR"),
                _series(platform_failed_filter(service_name), COUNT_ALIGNER, "REDUCE_SUM",
                        ["metric.label.response_code"], "STACKED_BAR")], "requests/s"),
    ]
    if caller_checks:
        widgets.append(_chart("Callers refused per second (unauthenticated, app_check_failed, auth_unavailable)",
                              [_series(codes_filter(requests_metric, (*CALLER_REFUSED, *AUTH_UNAVAILABLE)),
                                       COUNT_ALIGNER, "REDUCE_SUM", ["metric.label.code"], "STACKED_BAR")],
                              "requests/s"))
    if armor_metric is not None:
        widgets.append(_chart("Cloud Armor denials per second by rule (1000 origin, 2000 rate ban)",
                              [_series(armor_metric_filter(armor_metric), COUNT_ALIGNER, "REDUCE_SUM",
                                       ["metric.label.rule"], "STACKED_BAR")], "requests/s"))
    if quota_metric is not None:
        widgets.append(_chart("Per-caller budget refusals per second",
                              [_series(quota_filter(quota_metric, (QUOTA_CALLER,)), COUNT_ALIGNER, "REDUCE_SUM")],
                              "requests/s"))
        widgets.append(_chart("Global budget refusals and quota store failures per second",
                              [_series(quota_filter(quota_metric, (QUOTA_GLOBAL, *QUOTA_STORE_FAILED)), COUNT_ALIGNER,
                                       "REDUCE_SUM", ["metric.label.quota"], "STACKED_BAR")], "requests/s"))
    # Zero positions are left out: the API omits zero-valued fields when it reads a dashboard back,
    # so a written 0 would show as a diff on every `pulumi up` (terraform-provider-google#7242).
    tiles = [{**({"xPos": (i % 2) * 24} if i % 2 else {}), **({"yPos": (i // 2) * 16} if i // 2 else {}),
              "width": 24, "height": 16, "widget": widget}
             for i, widget in enumerate(widgets)]
    return {"displayName": title, "mosaicLayout": {"columns": 48, "tiles": tiles}}


def metric_specs(service_name: str, policy_name: Optional[str], quotas: bool = False) -> dict[str, dict[str, Any]]:
    """The log-based metrics (suffix -> gcp.logging.Metric arguments besides name/project)."""
    specs: dict[str, dict[str, Any]] = {
        "requests": {
            "description": "Token endpoint requests, one per log line, by contract code and HTTP status",
            "filter": function_log_filter(service_name),
            "metric_descriptor": {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1",
                                  "display_name": "Token endpoint requests",
                                  "labels": [{"key": "code", "value_type": "STRING",
                                              "description": "the contract's code (ok, origin_not_allowed, ...)"},
                                             {"key": "status", "value_type": "STRING",
                                              "description": "HTTP status answered"}]},
            "label_extractors": {"code": "EXTRACT(jsonPayload.code)", "status": "EXTRACT(httpRequest.status)"},
        },
        "latency": {
            "description": "Token endpoint latency (ms) as the function measured it, by contract code",
            "filter": function_log_filter(service_name),
            "metric_descriptor": {"metric_kind": "DELTA", "value_type": "DISTRIBUTION", "unit": "ms",
                                  "display_name": "Token endpoint latency",
                                  "labels": [{"key": "code", "value_type": "STRING",
                                              "description": "the contract's code"}]},
            "label_extractors": {"code": "EXTRACT(jsonPayload.code)"},
            "value_extractor": "EXTRACT(jsonPayload.latencyMs)",
            "bucket_options": {"exponential_buckets": dict(LATENCY_BUCKETS)},
        },
    }
    if policy_name is not None:
        specs["armor-denials"] = {
            "description": "Requests Cloud Armor denied at the load balancer, by rule priority and status",
            "filter": armor_log_filter(policy_name),
            "metric_descriptor": {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1",
                                  "display_name": "Cloud Armor denials",
                                  "labels": [{"key": "rule", "value_type": "STRING",
                                              "description": "priority of the denying rule"},
                                             {"key": "status", "value_type": "STRING",
                                              "description": "HTTP status answered (403, 429)"}]},
            "label_extractors": {"rule": "EXTRACT(jsonPayload.enforcedSecurityPolicy.priority)",
                                 "status": "EXTRACT(httpRequest.status)"},
        }
    if quotas:
        specs["quota"] = {
            "description": "Token endpoint requests the quota step refused or could not check, by budget",
            "filter": quota_log_filter(service_name),
            "metric_descriptor": {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1",
                                  "display_name": "Token endpoint quota refusals",
                                  "labels": [{"key": "quota", "value_type": "STRING",
                                              "description": "caller, global, unavailable (503) or open (minted unchecked)"},
                                             {"key": "code", "value_type": "STRING",
                                              "description": "the contract's code"}]},
            "label_extractors": {"quota": "EXTRACT(jsonPayload.quota)", "code": "EXTRACT(jsonPayload.code)"},
        }
    return specs


# --- the component -----------------------------------------------------------------------------

@dataclass
class MonitoringArgs:
    settings: MonitoringSettings
    project: str
    prefix: str  # physical-name prefix, e.g. "outspeed-token-prod" (dev and prod may share a project)
    service_name: pulumi.Input[str]  # the function's Cloud Run service (short name)
    armor_policy_name: Optional[pulumi.Input[str]] = None  # the edge's Cloud Armor policy; None without edge
    quotas: bool = False  # the function enforces budgets: watch its refusals


class Monitoring(pulumi.ComponentResource):
    """Log-based metrics, alert policies (with email channels) and a dashboard for one stack."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("outspeed-token:infra:Monitoring", name, None, opts)
        # Imported here, not at the top: outspeed_token.settings imports this module for parse_monitoring
        # and stays free of pulumi_gcp (local tools read config without it).
        import pulumi_gcp as gcp
        import pulumiverse_time as pulumi_time
        from .apis import ProjectApis

        m, project, prefix = args.settings, args.project, args.prefix
        with_edge = args.armor_policy_name is not None
        apis = ProjectApis(f"{name}-apis", project, MONITORING_APIS, opts=pulumi.ResourceOptions(parent=self))

        child = functools.partial(apis.child_options, self)

        policy_name = pulumi.Output.from_input(args.armor_policy_name) if with_edge else pulumi.Output.from_input(None)
        specs = pulumi.Output.all(args.service_name, policy_name).apply(
            lambda sp: metric_specs(sp[0], sp[1], args.quotas))
        self.metrics: dict[str, Any] = {}
        for suffix in ("requests", "latency", *(("armor-denials",) if with_edge else ()),
                       *(("quota",) if args.quotas else ())):
            spec = specs.apply(lambda s, suffix=suffix: s[suffix])
            bucket = ({"bucket_options": spec.apply(lambda s: s["bucket_options"])} if suffix == "latency" else {})
            value = ({"value_extractor": spec.apply(lambda s: s["value_extractor"])} if suffix == "latency" else {})
            self.metrics[suffix] = gcp.logging.Metric(
                f"{name}-{suffix}",
                project=project,
                name=f"{prefix}-{suffix}",
                description=spec.apply(lambda s: s["description"]),
                filter=spec.apply(lambda s: s["filter"]),
                metric_descriptor=spec.apply(lambda s: s["metric_descriptor"]),
                label_extractors=spec.apply(lambda s: s["label_extractors"]),
                **value,
                **bucket,
                opts=child(),
            )

        self.channels = [
            gcp.monitoring.NotificationChannel(
                # Named by the address, not its position: reordering the list replaces nothing.
                f"{name}-email-{hashlib.sha256(email.encode()).hexdigest()[:10]}",
                project=project,
                type="email",
                display_name=f"{prefix} alerts: {email}",
                labels={"email_address": email},
                opts=child(),
            )
            for email in m.alert_emails
        ]
        channel_ids = [c.id for c in self.channels]

        # Alert filters name the metrics through their resources' outputs, so a policy is only
        # created once its metric exists (the API refuses a condition on an unknown metric).
        quota_name = self.metrics["quota"].name if args.quotas else None
        names = pulumi.Output.all(args.service_name, self.metrics["requests"].name,
                                  self.metrics["armor-denials"].name if with_edge else None, quota_name)
        all_specs = names.apply(lambda n: alert_specs(m, n[0], n[1], n[2], n[3]))
        # The set of policies depends only on settings (known at plan time); the filters fill in.
        keys = [s.key for s in alert_specs(m, "-", "-", "-" if with_edge else None, "-" if args.quotas else None)]
        metrics_settled = pulumi_time.Sleep(
            f"{name}-metrics-settle",
            create_duration=METRICS_SETTLE,
            triggers={suffix: metric.name for suffix, metric in self.metrics.items()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.metrics.values())),
        )
        self.alerts: dict[str, Any] = {}
        for key in keys:
            spec = all_specs.apply(lambda specs, key=key: next(s for s in specs if s.key == key))
            links = ([{"display_name": "runbook", "url": spec.apply(lambda s: f"{m.runbook_url}#{s.anchor}")}]
                     if m.runbook_url else None)
            self.alerts[key] = gcp.monitoring.AlertPolicy(
                f"{name}-{key}",
                project=project,
                display_name=spec.apply(lambda s: f"{prefix}: {s.title}"),
                severity=spec.apply(lambda s: s.severity),
                combiner=spec.apply(lambda s: s.combiner),
                conditions=spec.apply(lambda s: [_condition(c) for c in s.conditions]),
                notification_channels=channel_ids,
                documentation={"content": spec.apply(lambda s: documentation(s, m.runbook_url)),
                               "mime_type": "text/markdown",
                               "subject": spec.apply(lambda s: f"{prefix}: {s.title}"),
                               **({"links": links} if links else {})},
                alert_strategy={"auto_close": "1800s"},
                user_labels={"deployment": prefix},
                opts=child(metrics_settled, *self.metrics.values()),
            )

        board = pulumi.Output.all(args.service_name, self.metrics["requests"].name, self.metrics["latency"].name,
                                  self.metrics["armor-denials"].name if with_edge else None, quota_name)
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=project,
            dashboard_json=board.apply(lambda b: json.dumps(
                dashboard(f"{prefix} token endpoint", b[0], b[1], b[2], b[3], m.caller_checks, b[4]),
                sort_keys=True)),
            opts=child(*self.metrics.values()),
        )
        self.dashboard_url = self.dashboard.id.apply(lambda i: dashboard_url(project, i))
        self.register_outputs({"dashboardUrl": self.dashboard_url,
                               "alertPolicies": [a.display_name for a in self.alerts.values()]})


def _condition(c: dict[str, Any]) -> dict[str, Any]:
    # Log-based counts have no points while nothing happens: missing data counts as "fine", so an
    # incident closes once the failures stop instead of waiting out auto-close.
    threshold = {k: v for k, v in c.items() if k != "display_name"}
    threshold.update(duration=f"{ALERT_DURATION_SECONDS}s", evaluation_missing_data="EVALUATION_MISSING_DATA_INACTIVE")
    return {"display_name": c["display_name"], "condition_threshold": threshold}
