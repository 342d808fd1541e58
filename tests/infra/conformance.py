"""Offline API conformance: every resource a run registers, checked against Google's own rules.

Mocks accept anything, so a value Google's API refuses (an enum it does not know, a name too
long, `evaluationMissingData` with a zero `duration`) passes every mocks test and fails the
first real `pulumi up`. This module checks a run (tools.plan.run_program's dict) against the
discovery documents Google publishes, as shipped by the pinned google-api-python-client
(requirements-dev.txt), offline:

- each pulumi-gcp resource type is mapped to the API document and request schema it writes
  (`KINDS`); pulumi-gcp inputs are camelCase like the API, so a same-named field maps to the
  same-named API field, every other name is mapped explicitly (`Kind.renames`) or listed as
  not a body field, with why (`Kind.outside`). A field found in neither is a violation, never
  skipped; so is a resource type found in neither `KINDS` nor `NOT_GOOGLE`;
- every mapped value is walked against the schema: types, enums, `google-duration` format,
  `pattern`, output-only fields;
- JSON carried in a string (the dashboard) is parsed and walked against its own schema;
- rules the API states only in prose (lengths, character sets, cross-field requirements) are
  encoded one function each with the sentence that states them (`FIELD_RULES`,
  `OBJECT_RULES`, `PARAM_RULES`); tests/infra/test_api_conformance.py feeds each a violating
  input.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import googleapiclient

DOCS_DIR = Path(googleapiclient.__file__).resolve().parent / "discovery_cache" / "documents"
PROVIDER = "provider-side setting (pulumi-gcp/Terraform behaviour), never sent to the API"
PROJECT = "the project is part of the request URL (path parameter), not of the body"


@functools.lru_cache(maxsize=None)
def document(api: str) -> dict[str, Any]:
    """A discovery document by `name.version`, e.g. "monitoring.v3"."""
    return json.loads((DOCS_DIR / f"{api}.json").read_text())


def method(api: str, *path: str) -> dict[str, Any]:
    node = document(api)
    for part in path[:-1]:
        node = node["resources"][part]
    return node["methods"][path[-1]]


def description(api: str, schema: str, prop: str) -> str:
    return document(api)["schemas"][schema]["properties"][prop].get("description", "")


@dataclass(frozen=True)
class Kind:
    """How one pulumi-gcp resource type reaches the API."""
    api: str  # discovery document, e.g. "monitoring.v3"
    schema: Optional[str]  # request-body schema; None when everything goes into the URL
    renames: dict[str, str] = field(default_factory=dict)  # pulumi input path -> API path ("x[]": wrap in a list)
    outside: dict[str, str] = field(default_factory=dict)  # pulumi input path -> why it is not a body field
    json_strings: dict[str, tuple[str, str]] = field(default_factory=dict)  # input -> (api, schema) of its JSON
    reshape: dict[str, Callable[[Any], Any]] = field(default_factory=dict)  # pulumi input path -> API value


def _binding(api: str, schema: str, *resource: str) -> Kind:
    # xIamMember adds one member to one role of the resource's IAM policy: a Binding.
    return Kind(api, schema, renames={"member": "members[]"},
                outside={"project": PROJECT, **{r: "names the resource whose IAM policy is changed (URL)" for r in resource}})


def _compute(schema: str, **extra: Any) -> Kind:
    return Kind("compute.v1", schema, renames=extra.get("renames", {}),
                outside={"project": PROJECT, **extra.get("outside", {})})


KINDS: dict[str, Kind] = {
    "gcp:projects/service:Service": Kind(
        "serviceusage.v1", None,
        outside={"project": PROJECT, "service": "the service is the URL's name (PARAM_RULES checks it)",
                 "disableOnDestroy": PROVIDER, "disableDependentServices": PROVIDER}),
    "gcp:serviceaccount/account:Account": Kind(
        "iam.v1", "CreateServiceAccountRequest",
        renames={"displayName": "serviceAccount.displayName", "description": "serviceAccount.description"},
        outside={"project": PROJECT}),
    "gcp:projects/iAMMember:IAMMember": _binding("cloudresourcemanager.v1", "Binding"),
    "gcp:secretmanager/secret:Secret": Kind(
        "secretmanager.v1", "Secret", renames={"replication.auto": "replication.automatic"},
        outside={"project": PROJECT, "secretId": "query parameter secretId (PARAM_RULES checks it)"}),
    "gcp:secretmanager/secretVersion:SecretVersion": Kind(
        "secretmanager.v1", "AddSecretVersionRequest",
        outside={"secret": "the parent secret's name (URL)",
                 "secretData": "a secret: the provider base64-encodes it into payload.data (bytes, any content)"}),
    "gcp:secretmanager/secretIamMember:SecretIamMember": _binding("secretmanager.v1", "Binding", "secretId"),
    "gcp:artifactregistry/repository:Repository": Kind(
        "artifactregistry.v1", "Repository",
        # pulumi-gcp lists the policies, each with its id; the API keys a map by that id.
        reshape={"cleanupPolicies": lambda v: {p.get("id"): {k: x for k, x in p.items() if k != "id"} | {"id": p.get("id")}
                                               for p in v} if isinstance(v, list) else v},
        outside={"project": PROJECT, "location": "part of the parent's name (URL)",
                 "repositoryId": "query parameter repositoryId: the API states no rule for it in its description"}),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": _binding(
        "artifactregistry.v1", "Binding", "location", "repository"),
    "gcp:storage/bucket:Bucket": Kind(
        "storage.v1", "Bucket",
        renames={"uniformBucketLevelAccess": "iamConfiguration.uniformBucketLevelAccess.enabled",
                 "publicAccessPrevention": "iamConfiguration.publicAccessPrevention"},
        outside={"project": PROJECT, "forceDestroy": PROVIDER}),
    "gcp:storage/bucketObject:BucketObject": Kind(
        "storage.v1", "Object",
        outside={"bucket": "the bucket's name (URL)",
                 "source": "the uploaded bytes (media upload), not a metadata field "
                           "(tests/infra/test_infra_program.py checks the zip is deterministic)"}),
    "gcp:cloudfunctionsv2/function:Function": Kind(
        "cloudfunctions.v2", "Function",
        renames={"serviceConfig.directVpcNetworkInterfaces": "serviceConfig.directVpcNetworkInterface"},
        outside={"project": PROJECT, "location": "part of the parent's name (URL)",
                 "name": "query parameter functionId (PARAM_RULES checks it)"}),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": _binding("run.v2", "GoogleIamV1Binding", "location", "name"),
    "gcp:logging/metric:Metric": Kind("logging.v2", "LogMetric", outside={"project": PROJECT}),
    "gcp:monitoring/notificationChannel:NotificationChannel": Kind(
        "monitoring.v3", "NotificationChannel", outside={"project": PROJECT}),
    "gcp:monitoring/alertPolicy:AlertPolicy": Kind("monitoring.v3", "AlertPolicy", outside={"project": PROJECT}),
    # Dashboards are the Monitoring v1 API (projects.dashboards); the provider sends the JSON as the body.
    "gcp:monitoring/dashboard:Dashboard": Kind(
        "monitoring.v1", None, outside={"project": PROJECT, "dashboardJson": "the whole body, checked as JSON below"},
        json_strings={"dashboardJson": ("monitoring.v1", "Dashboard")}),
    "gcp:compute/securityPolicy:SecurityPolicy": _compute("SecurityPolicy"),
    "gcp:compute/sSLPolicy:SSLPolicy": _compute("SslPolicy"),
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": _compute("SslCertificate"),
    "gcp:compute/globalAddress:GlobalAddress": _compute("Address"),
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": _compute(
        "NetworkEndpointGroup", outside={"region": "part of the URL (regional resource)"}),
    "gcp:compute/backendService:BackendService": _compute(
        "BackendService", outside={"securityPolicy": "\"[Output Only]\" in the body: the provider attaches the policy "
                                                     "with backendServices.setSecurityPolicy after creating the service"}),
    "gcp:compute/uRLMap:URLMap": _compute("UrlMap"),
    "gcp:compute/targetHttpProxy:TargetHttpProxy": _compute("TargetHttpProxy"),
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": _compute("TargetHttpsProxy"),
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": _compute(
        "ForwardingRule", renames={"ipAddress": "IPAddress", "ipProtocol": "IPProtocol"}),
    # Resources other branches add (Memorystore, its VPC, App Check's project grant): mapped so
    # their same-named fields are checked; any other field they set is reported until mapped here.
    "gcp:compute/network:Network": _compute(
        "Network", renames={"routingMode": "routingConfig.routingMode"},
        outside={"deleteDefaultRoutesOnCreate": PROVIDER}),
    "gcp:compute/subnetwork:Subnetwork": _compute("Subnetwork", outside={"region": "part of the URL (regional resource)"}),
    "gcp:redis/instance:Instance": Kind(
        "redis.v1", "Instance",
        outside={"project": PROJECT, "region": "part of the parent's name (URL)",
                 "name": "query parameter instanceId (PARAM_RULES checks it)",
                 "deletionProtection": PROVIDER}),
}

# Registered resources that are not Google API objects at all.
NOT_GOOGLE: dict[str, str] = {
    "time:index/sleep:Sleep": "pulumiverse-time: a local wait inside the engine, no cloud API",
}


# --- rules the API states in prose -------------------------------------------------------------

Rule = Callable[[Any], Optional[str]]


def _length(lo: int, hi: int, unit: str = "characters") -> Rule:
    def check(v: Any) -> Optional[str]:
        n = len(v.encode()) if unit == "bytes" else len(v)
        return None if lo <= n <= hi else f"{v!r} has {n} {unit}, allowed {lo}-{hi}"
    return check


def _regex(pattern: str) -> Rule:
    def check(v: Any) -> Optional[str]:
        return None if re.fullmatch(pattern, v) else f"{v!r} does not match {pattern}"
    return check


def _all(*rules: Rule) -> Rule:
    def check(v: Any) -> Optional[str]:
        return next((m for m in (r(v) for r in rules) if m), None)
    return check


def _between(lo: int, hi: Optional[int] = None) -> Rule:
    def check(v: Any) -> Optional[str]:
        return None if lo <= v and (hi is None or v <= hi) else f"{v!r} outside {lo}..{hi if hi is not None else ''}"
    return check


def _items(hi: int) -> Rule:
    return lambda v: None if len(v) <= hi else f"{len(v)} entries, at most {hi}"


def _labels(v: dict[str, str]) -> Optional[str]:
    if len(v) > 64:
        return f"{len(v)} labels, at most 64"
    for key, value in v.items():
        for text, what in ((key, "key"), (value, "value")):
            if len(text) > 63 or len(text.encode()) > 128 or not re.fullmatch(r"[a-z0-9_-]*", text):
                return f"label {what} {text!r}: at most 63 characters of lowercase letters, digits, _ and -"
        if not re.match(r"[a-z]", key):
            return f"label key {key!r} must begin with a letter"
    return None


def seconds(duration: str) -> float:
    return float(duration[:-1])


# (api, schema, property) -> (rule on the value, the sentence of the API that states it)
FIELD_RULES: dict[tuple[str, str, str], tuple[Rule, str]] = {
    ("iam.v1", "CreateServiceAccountRequest", "accountId"): (
        _all(_length(6, 30), _regex(r"[a-z]([-a-z0-9]*[a-z0-9])")),
        "iam.v1 CreateServiceAccountRequest.accountId: \"must be 6-30 characters long, and match the regular "
        "expression `[a-z]([-a-z0-9]*[a-z0-9])`\""),
    ("iam.v1", "ServiceAccount", "displayName"): (
        _length(0, 100, "bytes"), "iam.v1 ServiceAccount.displayName: \"The maximum length is 100 UTF-8 bytes.\""),
    ("logging.v2", "LogMetric", "name"): (
        _all(_length(1, 100), _regex(r"[A-Za-z0-9_\-.,+!*',()%][A-Za-z0-9_\-.,+!*',()%/]*")),
        "logging.v2 LogMetric.name: \"limited to 100 characters and can include only ... A-Z, a-z, 0-9, and "
        "_-.,+!*',()%/ ... (/) ... cannot be the first character\""),
    ("monitoring.v3", "AlertPolicy", "displayName"): (
        _length(1, 512), "monitoring.v3 AlertPolicy.displayName: \"limited to 512 Unicode characters\""),
    ("monitoring.v3", "AlertPolicy", "userLabels"): (
        _labels, "monitoring.v3 AlertPolicy.userLabels: \"up to 64 entries. Each key and value is limited to 63 "
        "Unicode characters or 128 bytes ... only lowercase letters, numerals, underscores, and dashes. Keys must "
        "begin with a letter.\""),
    ("monitoring.v3", "Documentation", "content"): (
        _all(_length(0, 8192), _length(0, 10240, "bytes")),
        "monitoring.v3 Documentation.content: \"may not exceed 8,192 Unicode characters and ... 10,240 bytes\""),
    ("monitoring.v3", "Documentation", "subject"): (
        _length(0, 10240, "bytes"), "monitoring.v3 Documentation.subject: \"may not exceed 10,240 bytes\""),
    ("monitoring.v3", "Documentation", "mimeType"): (
        _regex("text/markdown"), "monitoring.v3 Documentation.mimeType: \"Presently, only the value "
        "\"text/markdown\" is supported.\""),
    ("monitoring.v3", "Documentation", "links"): (
        _items(3), "monitoring.v3 Documentation.links: \"This field can contain up to 3 entries.\""),
    ("monitoring.v3", "Link", "displayName"): (
        _length(1, 63), "monitoring.v3 Link.displayName: \"must not be empty or exceed 63 characters\""),
    ("monitoring.v3", "Link", "url"): (
        _length(1, 2083), "monitoring.v3 Link.url: \"should not exceed 2083 characters\""),
    ("monitoring.v3", "MetricThreshold", "filter"): (
        _length(1, 2048), "monitoring.v3 MetricThreshold.filter: \"must not exceed 2048 Unicode characters\""),
    ("monitoring.v3", "MetricThreshold", "denominatorFilter"): (
        _length(1, 2048), "monitoring.v3 MetricThreshold.denominatorFilter: \"may not exceed 2048 Unicode characters\""),
    ("monitoring.v1", "MosaicLayout", "columns"): (
        _between(1, 48), "monitoring.v1 MosaicLayout.columns: \"must be between 1 and 48, inclusive\""),
    ("monitoring.v1", "Tile", "xPos"): (_between(0), "monitoring.v1 Tile.xPos: \"x_pos cannot be negative\""),
    ("monitoring.v1", "Tile", "yPos"): (_between(0), "monitoring.v1 Tile.yPos: \"y_pos cannot be negative\""),
    ("monitoring.v1", "Tile", "width"): (_between(1), "monitoring.v1 Tile.width: \"minimum width of 1\""),
    ("monitoring.v1", "Tile", "height"): (_between(1), "monitoring.v1 Tile.height: \"minimum height of 1\""),
    ("cloudfunctions.v2", "BuildConfig", "dockerRepository"): (
        _regex(r"projects/[^/]+/locations/[^/]+/repositories/[^/]+"),
        "cloudfunctions.v2 BuildConfig.dockerRepository: \"It must match the pattern "
        "`projects/{project}/locations/{location}/repositories/{repository}`\""),
    ("cloudfunctions.v2", "BuildConfig", "serviceAccount"): (
        _regex(r"projects/[^/]+/serviceAccounts/[^/]+@[^/]+"),
        "cloudfunctions.v2 BuildConfig.serviceAccount: \"The format of this field is "
        "`projects/{projectId}/serviceAccounts/{serviceAccountEmail}`\""),
    ("monitoring.v3", "NotificationChannel", "displayName"): (
        _length(0, 512), "monitoring.v3 NotificationChannel.displayName: \"limited to 512 Unicode characters\""),
    ("logging.v2", "LogMetric", "description"): (
        _length(0, 8000), "logging.v2 LogMetric.description: \"The maximum length of the description is 8000 characters.\""),
    ("logging.v2", "LogMetric", "filter"): (
        _length(1, 20000), "logging.v2 LogMetric.filter: \"The maximum length of the filter is 20000 characters.\""),
    ("logging.v2", "LogMetric", "valueExtractor"): (
        _regex(r"EXTRACT\([A-Za-z0-9_.@\"/-]+\)|REGEXP_EXTRACT\([A-Za-z0-9_.@\"/-]+, *\".*\"\)"),
        "logging.v2 LogMetric.valueExtractor: \"Two functions are supported for value extraction: EXTRACT(field) or "
        "REGEXP_EXTRACT(field, regex).\""),
    ("logging.v2", "Exponential", "growthFactor"): (
        lambda v: None if v > 1 else f"{v} is not greater than 1", "logging.v2 Exponential.growthFactor: \"Must be greater than 1.\""),
    ("logging.v2", "Exponential", "numFiniteBuckets"): (
        _between(1), "logging.v2 Exponential.numFiniteBuckets: \"Must be greater than 0.\""),
    ("logging.v2", "Exponential", "scale"): (
        lambda v: None if v > 0 else f"{v} is not greater than 0", "logging.v2 Exponential.scale: \"Must be greater than 0.\""),
    ("compute.v1", "SecurityPolicyRule", "action"): (
        _regex(r"allow|deny\((403|404|502)\)|rate_based_ban|redirect|throttle|fairshare"),
        "compute.v1 SecurityPolicyRule.action: allow, deny(STATUS) (\"Valid values for `STATUS` are 403, 404, and "
        "502\"), rate_based_ban, redirect, throttle, fairshare"),
    ("compute.v1", "SecurityPolicyRule", "priority"): (
        _between(0, 2147483647), "compute.v1 SecurityPolicyRule.priority: \"must be a positive value between 0 and "
        "2147483647\""),
    ("compute.v1", "SecurityPolicyRuleRateLimitOptions", "conformAction"): (
        _regex("allow"), "compute.v1 SecurityPolicyRuleRateLimitOptions.conformAction: \"Valid option is \"allow\" only.\""),
    ("compute.v1", "SecurityPolicyRuleRateLimitOptions", "exceedAction"): (
        _regex(r"deny\((403|404|429|502)\)|redirect"),
        "compute.v1 SecurityPolicyRuleRateLimitOptions.exceedAction: \"Valid options are `deny(STATUS)`, where valid "
        "values for `STATUS` are 403, 404, 429, and 502, and `redirect`\""),
    ("compute.v1", "BackendServiceLogConfig", "sampleRate"): (
        lambda v: None if 0 <= v <= 1 else f"{v} outside [0, 1]",
        "compute.v1 BackendServiceLogConfig.sampleRate: \"The value of the field must be in [0, 1].\""),
    ("compute.v1", "HttpFaultAbort", "httpStatus"): (
        _between(200, 599), "compute.v1 HttpFaultAbort.httpStatus: \"The value must be from 200 to 599 inclusive.\""),
    ("compute.v1", "HttpFaultAbort", "percentage"): (
        lambda v: None if 0 <= v <= 100 else f"{v} outside 0.0..100.0",
        "compute.v1 HttpFaultAbort.percentage: \"The value must be from 0.0 to 100.0 inclusive.\""),
    ("compute.v1", "NetworkEndpointGroupCloudRun", "service"): (
        _all(_length(1, 63), _regex(r"[a-z]([-a-z0-9]*[a-z0-9])?")),
        "compute.v1 NetworkEndpointGroupCloudRun.service: \"The service must be 1-63 characters long, and comply "
        "withRFC1035.\""),
    ("cloudfunctions.v2", "ServiceConfig", "directVpcNetworkInterface"): (
        _items(1), "cloudfunctions.v2 ServiceConfig.directVpcNetworkInterface: \"Currently only a single Direct VPC is "
        "supported.\""),
    ("storage.v1", "Bucket.iamConfiguration", "publicAccessPrevention"): (
        _regex("inherited|enforced"), "storage.v1 Bucket.iamConfiguration.publicAccessPrevention: \"The bucket's "
        "Public Access Prevention configuration. Currently, 'inherited' and 'enforced' are supported.\""),
}

# Bindings in every API: the member forms the IAM Binding documents.
_MEMBER = (r"(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|principal|principalSet"
           r"|deleted:user|deleted:serviceAccount|deleted:group):.+)")
for _api, _schema in (("cloudresourcemanager.v1", "Binding"), ("secretmanager.v1", "Binding"),
                      ("artifactregistry.v1", "Binding"), ("run.v2", "GoogleIamV1Binding")):
    FIELD_RULES[(_api, _schema, "role")] = (
        _regex(r"roles/[A-Za-z0-9_.]+|projects/[^/]+/roles/[A-Za-z0-9_.]+|organizations/[^/]+/roles/[A-Za-z0-9_.]+"),
        f"{_api} {_schema}.role: \"Role that is assigned to the list of `members`, or principals. For example, "
        "`roles/viewer`, `roles/editor`, or `roles/owner`.\"")
    FIELD_RULES[(_api, _schema, "members")] = (
        lambda v: next((f"member {m!r} is none of the documented forms" for m in v if not re.fullmatch(_MEMBER, m)), None),
        f"{_api} {_schema}.members: the forms listed (allUsers, allAuthenticatedUsers, user:, serviceAccount:, "
        "group:, domain:, principal:, principalSet:, deleted:...)")


def _aggregation_rules(api: str) -> list[tuple[Rule, str]]:
    def reducer_needs_aligner(a: dict[str, Any]) -> Optional[str]:
        if a.get("crossSeriesReducer", "REDUCE_NONE") != "REDUCE_NONE":
            if a.get("perSeriesAligner", "ALIGN_NONE") == "ALIGN_NONE" or "alignmentPeriod" not in a:
                return f"crossSeriesReducer {a['crossSeriesReducer']} without a perSeriesAligner and alignmentPeriod"
        return None

    def aligner_needs_period(a: dict[str, Any]) -> Optional[str]:
        if a.get("perSeriesAligner", "ALIGN_NONE") != "ALIGN_NONE" and "alignmentPeriod" not in a:
            return f"perSeriesAligner {a['perSeriesAligner']} without an alignmentPeriod"
        return None

    def period_at_least_a_minute(a: dict[str, Any]) -> Optional[str]:
        if "alignmentPeriod" in a and seconds(a["alignmentPeriod"]) < 60:
            return f"alignmentPeriod {a['alignmentPeriod']} is under 60 seconds"
        return None

    return [
        (reducer_needs_aligner, f"{api} Aggregation.crossSeriesReducer: \"If cross_series_reducer is specified, then "
                                "per_series_aligner must be specified, and must not be ALIGN_NONE. An alignment_period "
                                "must also be specified; otherwise, an error is returned.\""),
        (aligner_needs_period, f"{api} Aggregation.alignmentPeriod: \"If a per-series aligner other than ALIGN_NONE is "
                               "specified, this field is required or an error is returned.\""),
        (period_at_least_a_minute, f"{api} Aggregation.alignmentPeriod: \"The value must be at least 60 seconds.\""),
    ]


def _missing_data_needs_a_minute(t: dict[str, Any]) -> Optional[str]:
    if t.get("evaluationMissingData", "EVALUATION_MISSING_DATA_UNSPECIFIED") != "EVALUATION_MISSING_DATA_UNSPECIFIED":
        if seconds(t.get("duration", "0s")) < 60:
            return (f"evaluationMissingData {t['evaluationMissingData']} with duration {t.get('duration', '(unset)')}: "
                    "the duration must be at least 60s")
    return None


def _duration_whole_minutes(t: dict[str, Any]) -> Optional[str]:
    if "duration" in t and seconds(t["duration"]) % 60:
        return f"duration {t['duration']} is not a multiple of a minute"
    return None


def _ratio_same_period(t: dict[str, Any]) -> Optional[str]:
    if "denominatorFilter" not in t:
        return None
    periods = {a.get("alignmentPeriod") for a in [*t.get("aggregations", []), *t.get("denominatorAggregations", [])]}
    return None if len(periods) == 1 else f"ratio with alignment periods {sorted(map(str, periods))}"


def _alerting_period_cap(t: dict[str, Any]) -> Optional[str]:
    for a in [*t.get("aggregations", []), *t.get("denominatorAggregations", [])]:
        if "alignmentPeriod" in a and seconds(a["alignmentPeriod"]) > 90_000:
            return f"alignmentPeriod {a['alignmentPeriod']} exceeds 90000s"
    return None


def _names_metric_and_resource_type(t: dict[str, Any]) -> Optional[str]:
    missing = [what for what in ("metric.type", "resource.type") if not re.search(rf"\b{re.escape(what)}\s*=", t["filter"])]
    return f"filter {t['filter']!r} names no {' and no '.join(missing)}" if missing else None


def _denominator_names_metric_type(t: dict[str, Any]) -> Optional[str]:
    if "denominatorFilter" in t and not re.search(r"\bmetric\.type\s*=", t["denominatorFilter"]):
        return f"denominatorFilter {t['denominatorFilter']!r} names no metric.type"
    return None


def _tiles_within_columns(layout: dict[str, Any]) -> Optional[str]:
    columns = layout.get("columns", 0)
    for tile in layout.get("tiles", []):
        if tile.get("xPos", 0) + tile.get("width", 1) > columns:
            return f"tile {tile.get('widget', {}).get('title')!r} at xPos {tile.get('xPos', 0)} width " \
                   f"{tile.get('width')} exceeds {columns} columns"
    return None


def _rate_limit_options_iff_rate_action(r: dict[str, Any]) -> Optional[str]:
    rated = r.get("action") in ("rate_based_ban", "throttle", "fairshare")
    if rated != ("rateLimitOptions" in r):
        return f"action {r.get('action')!r} {'without' if rated else 'with'} rateLimitOptions"
    return None


def _ban_options_only_for_bans(r: dict[str, Any]) -> Optional[str]:
    options = r.get("rateLimitOptions", {})
    if r.get("action") != "rate_based_ban" and {"banDurationSec", "banThreshold"} & set(options):
        return f"ban settings on a {r.get('action')!r} rule"
    return None


def _config_iff_versioned_expr(m: dict[str, Any]) -> Optional[str]:
    if ("versionedExpr" in m) != ("config" in m):
        return "versionedExpr and config must come together"
    if m.get("versionedExpr") == "SRC_IPS_V1" and not m.get("config", {}).get("srcIpRanges"):
        return "SRC_IPS_V1 without config.srcIpRanges"
    return None


def _has_default_rule(p: dict[str, Any]) -> Optional[str]:
    rules = p.get("rules")
    if rules is None:
        return None  # the API adds an allow-all default rule itself
    default = [r for r in rules if r.get("priority") == 2147483647
               and r.get("match", {}).get("config", {}).get("srcIpRanges") == ["*"]]
    return None if default else "no default rule (priority 2147483647 matching srcIpRanges [\"*\"])"


def _tls_profile_pairs(p: dict[str, Any]) -> Optional[str]:
    if p.get("minTlsVersion") == "TLS_1_3" and p.get("profile") != "RESTRICTED":
        return "minTlsVersion TLS_1_3 needs profile RESTRICTED"
    if p.get("profile") == "FIPS_202205" and p.get("minTlsVersion") != "TLS_1_2":
        return "profile FIPS_202205 needs minTlsVersion TLS_1_2"
    if p.get("profile") == "CUSTOM" and not p.get("customFeatures"):
        return "profile CUSTOM without customFeatures"
    return None


def _port_range_needs_port_protocol(f: dict[str, Any]) -> Optional[str]:
    if "portRange" in f and f.get("IPProtocol", "TCP") not in ("TCP", "UDP", "SCTP"):
        return f"portRange with IPProtocol {f.get('IPProtocol')}"
    return None


def _sample_rate_needs_logging(c: dict[str, Any]) -> Optional[str]:
    return "sampleRate without enable: true" if "sampleRate" in c and not c.get("enable") else None


def _distribution_needs_extractor_and_buckets(m: dict[str, Any]) -> Optional[str]:
    distribution = m.get("metricDescriptor", {}).get("valueType") == "DISTRIBUTION"
    for field_ in ("valueExtractor", "bucketOptions"):
        if distribution and field_ not in m:
            return f"a DISTRIBUTION metric without {field_}"
    return None


def _every_label_has_an_extractor(m: dict[str, Any]) -> Optional[str]:
    keys = {label["key"] for label in m.get("metricDescriptor", {}).get("labels", [])}
    missing = sorted(keys - set(m.get("labelExtractors", {})))
    return f"labels without an extractor: {missing}" if missing else None


def _unit_only_for_numbers(d: dict[str, Any]) -> Optional[str]:
    if "unit" in d and d.get("valueType") not in ("INT64", "DOUBLE", "DISTRIBUTION"):
        return f"unit on a {d.get('valueType')} metric"
    return None


# (api, schema) -> rules over a whole object of that schema, each with its sentence.
OBJECT_RULES: dict[tuple[str, str], list[tuple[Rule, str]]] = {
    ("monitoring.v3", "MetricThreshold"): [
        (_missing_data_needs_a_minute, "monitoring.v3 MetricThreshold.evaluationMissingData: \"To use this control, "
                                       "the value of the duration field must be greater than or equal to 60 seconds.\""),
        (_duration_whole_minutes, "monitoring.v3 MetricThreshold.duration: \"only values that are a multiple of a "
                                  "minute--e.g., 0, 60, 120, or 300 seconds--are supported. If an invalid value is "
                                  "given, an error will be returned.\""),
        (_ratio_same_period, "monitoring.v3 MetricThreshold.denominatorAggregations: \"the aggregations and "
                             "denominator_aggregations fields must use the same alignment period\""),
        (_alerting_period_cap, "monitoring.v3 Aggregation.alignmentPeriod: \"The maximum value of the alignment_period "
                               "is ... 90,000 seconds (25 hours) for alerting policies.\""),
        (_names_metric_and_resource_type, "monitoring.v3 MetricThreshold.filter: \"The filter must specify the metric "
                                          "type and the resource type.\" (the API answers 400 \"must specify a "
                                          "restriction on resource.type in the filter\": googleapis/nodejs-monitoring#46, "
                                          "hashicorp/terraform-provider-google#4165)"),
        (_denominator_names_metric_type, "monitoring.v3 MetricThreshold.denominatorFilter: \"The filter must specify "
                                         "the metric type\""),
    ],
    ("monitoring.v3", "Aggregation"): _aggregation_rules("monitoring.v3"),
    ("monitoring.v1", "Aggregation"): _aggregation_rules("monitoring.v1"),
    ("compute.v1", "SecurityPolicyRule"): [
        (_rate_limit_options_iff_rate_action, "compute.v1 SecurityPolicyRule.rateLimitOptions: \"Must be specified if the "
                                              "action is \"rate_based_ban\" or \"throttle\" or \"fairshare\". Cannot be "
                                              "specified for any other actions.\""),
        (_ban_options_only_for_bans, "compute.v1 SecurityPolicyRuleRateLimitOptions.banDurationSec/banThreshold: \"Can "
                                     "only be specified if the action for the rule is \"rate_based_ban\".\""),
    ],
    ("compute.v1", "SecurityPolicyRuleMatcher"): [
        (_config_iff_versioned_expr, "compute.v1 SecurityPolicyRuleMatcher.config: \"must be specified if versioned_expr "
                                     "is specified and cannot be specified if versioned_expr is not specified\"; "
                                     "versionedExpr: \"SRC_IPS_V1 - must specify the corresponding src_ip_range field\""),
    ],
    ("compute.v1", "SecurityPolicy"): [
        (_has_default_rule, "compute.v1 SecurityPolicy.rules: \"There must always be a default rule which is a rule with "
                            "priority 2147483647 and match all condition\""),
    ],
    ("compute.v1", "SslPolicy"): [
        (_tls_profile_pairs, "compute.v1 SslPolicy.minTlsVersion: \"When set to TLS_1_3, the profile field must be set "
                             "to RESTRICTED.\"; profile: \"If using CUSTOM, the set of SSL features to enable must be "
                             "specified in the customFeatures field. If using FIPS_202205, the min_tls_version field must "
                             "be set to TLS_1_2.\""),
    ],
    ("compute.v1", "ForwardingRule"): [
        (_port_range_needs_port_protocol, "compute.v1 ForwardingRule.portRange: \"It requires that the forwarding rule "
                                          "IPProtocol be TCP, UDP, or SCTP\""),
    ],
    ("compute.v1", "BackendServiceLogConfig"): [
        (_sample_rate_needs_logging, "compute.v1 BackendServiceLogConfig.sampleRate: \"This field can only be specified "
                                     "if logging is enabled for this backend service.\""),
    ],
    ("logging.v2", "LogMetric"): [
        (_distribution_needs_extractor_and_buckets, "logging.v2 LogMetric.valueExtractor: \"required when using a "
                                                    "distribution logs-based metric\"; bucketOptions: \"required when the "
                                                    "logs-based metric is using a DISTRIBUTION value type\""),
        (_every_label_has_an_extractor, "logging.v2 LogMetric.labelExtractors: \"Each label key specified in the "
                                        "LabelDescriptor must have an associated extractor expression in this map.\""),
    ],
    ("logging.v2", "MetricDescriptor"): [
        (_unit_only_for_numbers, "logging.v2 MetricDescriptor.unit: \"It is only applicable if the value_type is INT64, "
                                 "DOUBLE, or DISTRIBUTION.\""),
    ],
    ("monitoring.v1", "MosaicLayout"): [
        (_tiles_within_columns, "monitoring.v1 Tile.xPos: \"Tiles must be contained within the specified number of "
                                "columns.\""),
    ],
}


def _service_name(v: str) -> Optional[str]:
    pattern = method("serviceusage.v1", "services", "enable")["parameters"]["name"]["pattern"]
    name = f"projects/p/services/{v}"
    return None if re.fullmatch(pattern.strip("^$"), name) else f"{name!r} does not match {pattern}"


def _redis_instance_id(v: str) -> Optional[str]:
    return _all(_length(1, 40), _regex(r"[a-z]([-a-z0-9]*[a-z0-9])?"))(v)


# pulumi type -> input -> (rule, sentence): inputs that go into the URL, not the body.
PARAM_RULES: dict[str, dict[str, tuple[Rule, str]]] = {
    "gcp:projects/service:Service": {"service": (
        _service_name, "serviceusage.v1 services.enable: parameter name's pattern")},
    "gcp:cloudfunctionsv2/function:Function": {"name": (
        _all(_length(4, 63), _regex(r"[a-z-]+")),
        "cloudfunctions.v2 projects.locations.functions.create functionId: \"This value should be 4-63 "
        "characters, and valid characters are /a-z-/.\"")},
    "gcp:secretmanager/secret:Secret": {"secretId": (
        _all(_length(1, 255), _regex(r"[A-Za-z0-9_-]+")),
        "secretmanager.v1 projects.secrets.create secretId: \"a string with a maximum length of 255 characters "
        "and can contain uppercase and lowercase letters, numerals, and the hyphen (`-`) and underscore (`_`) "
        "characters\"")},
    "gcp:redis/instance:Instance": {"name": (
        _redis_instance_id,
        "redis.v1 projects.locations.instances.create instanceId: \"Must contain only lowercase letters, numbers, "
        "and hyphens. Must start with a letter. Must be between 1-40 characters. Must end with a number or a "
        "letter.\"")},
}


# Statements in the descriptions of fields the program sets that are deliberately NOT encoded, and why.
NOT_ENCODED: dict[tuple[str, str, str], str] = {
    ("cloudfunctions.v2", "StorageSource", "object"): (
        "\"This object must be a gzipped archive file (.tar.gz)\" contradicts the same API's "
        "GenerateUploadUrlResponse (\"The uploaded file should be a zip archive which contains a function\") and "
        "every Google and Terraform example of a 2nd-gen function deployed from a bucket, which upload a .zip; we "
        "upload a zip (unverified here: the first real deploy's build shows it)"),
    ("monitoring.v3", "AlertPolicy", "notificationChannels"): (
        "the format projects/[PROJECT_ID_OR_NUMBER]/notificationChannels/[CHANNEL_ID] is the provider's resource id; "
        "under mocks the id is the mock's own, so checking it would test the mock"),
    ("compute.v1", "ForwardingRule", "portRange"): (
        "\"Some products have restrictions on what ports can be used\": the per-product port table is a web page, not "
        "the description; tests/infra checks :80 and :443 for the external Application Load Balancer"),
    ("cloudfunctions.v2", "BuildConfig", "runtime"): (
        "the list of runtimes is a gcloud reference page, not the description; python312 is in it"),
}


# JSON strings the provider compares with what the API reads back: proto3 JSON leaves a field at its
# default value (0, "", false) out, so a value written as such never comes back and every
# `pulumi up` shows a diff (hashicorp/terraform-provider-google#7242, #16173: "xPos": 0 and the like).
ROUND_TRIP_RULE = ("a field set to its default value (0, \"\", false) is dropped by the API, so the provider "
                   "shows a diff on every up (hashicorp/terraform-provider-google#7242, #16173)")


# --- the walk ------------------------------------------------------------------------------------

@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # "<resource> <path>: why"
    checked_fields: int = 0


_DURATION = re.compile(r"-?[0-9]+(\.[0-9]{1,9})?s")


def _schema(api: str, name: str) -> dict[str, Any]:
    return document(api)["schemas"][name]


def _apply(rule: Rule, value: Any) -> Optional[str]:
    """A rule's verdict; a value too malformed to judge is a violation too, never a pass."""
    try:
        return rule(value)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return f"cannot apply the rule to {value!r} ({type(exc).__name__}: {exc})"


def walk(api: str, spec: dict[str, Any], value: Any, where: str, report: Report,
         schema_name: Optional[str] = None, prop: Optional[tuple[str, str]] = None) -> None:
    """Check `value` against a discovery schema node; `prop` = (schema, property) it sits in."""
    if "$ref" in spec:
        name = spec["$ref"]
        walk(api, _schema(api, name), value, where, report, schema_name=name, prop=prop)
        return
    if isinstance(value, dict) and set(value) == {"$secret"}:
        value = value["$secret"]
    if value == "$unknown":
        report.unchecked.append(f"{where}: unknown at plan time under mocks")
        return
    report.checked_fields += 1
    if spec.get("readOnly") or spec.get("description", "").startswith(("[Output Only]", "Output only.")):
        report.violations.append(f"{where}: output-only field set ({api} {prop[0] if prop else ''}.{prop[1] if prop else ''})")
    if prop:
        rule = FIELD_RULES.get((api, *prop))
        if rule:
            problem = _apply(rule[0], value)
            if problem:
                report.violations.append(f"{where}: {problem} [{rule[1]}]")
    kind = spec.get("type")
    if kind == "object" and "properties" in spec:
        if not isinstance(value, dict):
            report.violations.append(f"{where}: expected an object ({schema_name}), got {value!r}")
            return
        for key, item in value.items():
            if key not in spec["properties"]:
                report.violations.append(f"{where}.{key}: no such field in {api} {schema_name}")
                continue
            child = spec["properties"][key]
            walk(api, child, item, f"{where}.{key}", report, prop=(schema_name, key),
                 schema_name=None if "$ref" in child else f"{schema_name}.{key}")
        for rule, citation in OBJECT_RULES.get((api, schema_name), []):
            problem = _apply(rule, value)
            if problem:
                report.violations.append(f"{where}: {problem} [{citation}]")
    elif kind == "object":  # a map
        if not isinstance(value, dict):
            report.violations.append(f"{where}: expected a map, got {value!r}")
            return
        inner = spec.get("additionalProperties", {"type": "any"})
        for key, item in value.items():
            walk(api, inner, item, f"{where}[{key!r}]", report)
    elif kind == "array":
        if not isinstance(value, list):
            report.violations.append(f"{where}: expected a list, got {value!r}")
            return
        for i, item in enumerate(value):
            walk(api, spec["items"], item, f"{where}[{i}]", report)
    elif kind == "string":
        fmt = spec.get("format")
        if fmt in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
            return  # JSON numbers are accepted for 64-bit integers
        if not isinstance(value, str):
            report.violations.append(f"{where}: expected a string, got {value!r}")
            return
        if "enum" in spec and value not in spec["enum"]:
            report.violations.append(f"{where}: {value!r} is not one of {spec['enum']}")
        if fmt == "google-duration" and not _DURATION.fullmatch(value):
            report.violations.append(f"{where}: {value!r} is not a duration like \"60s\"")
        if "pattern" in spec and not re.fullmatch(spec["pattern"].strip("^$"), value):
            report.violations.append(f"{where}: {value!r} does not match the API's pattern {spec['pattern']}")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            report.violations.append(f"{where}: expected an integer, got {value!r}")
        elif spec.get("format") in ("int32", "uint32") and not -2**31 <= value < 2**32:
            report.violations.append(f"{where}: {value} does not fit {spec['format']}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            report.violations.append(f"{where}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            report.violations.append(f"{where}: expected a boolean, got {value!r}")
    elif kind != "any":
        report.violations.append(f"{where}: schema type {kind!r} not understood by the checker")


def _defaults(value: Any, where: str) -> list[str]:
    """Paths inside parsed JSON holding a proto3 default (see ROUND_TRIP_RULE)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if item == 0 and not isinstance(item, bool) or item == "" or item is False:
                found.append(f"{where}.{key}")
            found += _defaults(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _defaults(item, f"{where}[{i}]")
    return found


def api_shape(kind: Kind, inputs: dict[str, Any], where: str, report: Report) -> dict[str, Any]:
    """The request body the inputs become: renames applied, URL/provider fields set aside."""
    body: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        parts = path.split(".")
        node = body
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        last = parts[-1]
        if last.endswith("[]"):
            node[last[:-2]] = [value]
        else:
            node[last] = value

    def visit(node: dict[str, Any], prefix: str, target: dict[str, Any]) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in kind.reshape:
                value = kind.reshape[path](value)
            if path in kind.outside:
                report.unchecked.append(f"{where}.{path}: {kind.outside[path]}")
            elif path in kind.renames:
                put(kind.renames[path], value)
            elif isinstance(value, dict) and any(p.startswith(path + ".") for p in [*kind.renames, *kind.outside]):
                visit(value, path + ".", target.setdefault(key, {}))
            else:
                target[key] = value

    visit(inputs, "", body)
    return body


def check_resource(resource: dict[str, Any], report: Report) -> None:
    typ, inputs = resource["type"], resource["inputs"]
    where = f"{resource['name']} ({typ})"
    if not resource["custom"]:
        return  # component resources are the program's own grouping
    if typ in NOT_GOOGLE:
        report.unchecked.append(f"{where}: {NOT_GOOGLE[typ]}")
        return
    kind = KINDS.get(typ)
    if kind is None:
        report.violations.append(f"{where}: resource type has no API mapping; add it to KINDS (or NOT_GOOGLE, saying why)")
        return
    for key, (rule, citation) in PARAM_RULES.get(typ, {}).items():
        if key in inputs:
            problem = _apply(rule, inputs[key])
            if problem:
                report.violations.append(f"{where}.{key}: {problem} [{citation}]")
    for key, (api, schema) in kind.json_strings.items():
        if key not in inputs:
            continue
        try:
            parsed = json.loads(inputs[key])
        except ValueError as exc:
            report.violations.append(f"{where}.{key}: not JSON ({exc})")
            continue
        walk(api, _schema(api, schema), parsed, f"{where}.{key}", report, schema_name=schema)
        for path in _defaults(parsed, f"{where}.{key}"):
            report.violations.append(f"{path}: {ROUND_TRIP_RULE}")
    body = api_shape(kind, inputs, where, report)
    if kind.schema is None:
        for key in body:
            report.violations.append(f"{where}.{key}: not mapped (no request body for {typ}); map it in KINDS")
        return
    walk(kind.api, _schema(kind.api, kind.schema), body, where, report, schema_name=kind.schema)


def _https_redirect_only_behind_http_proxies(run: dict[str, Any]) -> list[str]:
    """compute.v1 HttpRedirectAction.httpsRedirect: "This must only be set for URL maps used in
    TargetHttpProxys. Setting this true for TargetHttpsProxy is not permitted." (across resources)"""
    def redirects(inputs: dict[str, Any]) -> bool:
        blocks = [inputs.get("defaultUrlRedirect") or {}]
        blocks += [m.get("defaultUrlRedirect") or {} for m in inputs.get("pathMatchers", [])]
        return any(b.get("httpsRedirect") for b in blocks)

    maps = {r["inputs"].get("name"): r for r in run["resources"] if r["type"] == "gcp:compute/uRLMap:URLMap"}
    problems = []
    for r in run["resources"]:
        if r["type"] == "gcp:compute/targetHttpsProxy:TargetHttpsProxy":
            used = maps.get(str(r["inputs"].get("urlMap", "")).rsplit("/", 1)[-1])
            if used is not None and redirects(used["inputs"]):
                problems.append(f"{r['name']}: URL map {used['name']} sets httpsRedirect behind a TargetHttpsProxy "
                                f"[{RUN_RULES[0][1]}]")
    return problems


# Rules across resources: (function over the whole run, sentence).
RUN_RULES: list[tuple[Callable[[dict[str, Any]], list[str]], str]] = [
    (_https_redirect_only_behind_http_proxies, "compute.v1 HttpRedirectAction.httpsRedirect: \"This must only be set "
                                               "for URL maps used inTargetHttpProxys. Setting this true forTargetHttpsProxy "
                                               "is not permitted.\""),
]


def check_run(run: dict[str, Any]) -> Report:
    report = Report()
    for resource in run["resources"]:
        check_resource(resource, report)
    for rule, _ in RUN_RULES:
        report.violations += rule(run)
    return report
