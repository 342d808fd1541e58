"""`TokenEndpointArgs`: the typed inputs of `TokenEndpoint`, and their one mapping to stack config.

Each field is the snake_case twin of a stack-config key of Pulumi.yaml (`rate_limit` ->
`rateLimit`, `quotas.global_` -> `quotas.global`), the same rule the Pulumi SDK's schema
analyzer uses (`pulumi.provider.experimental.util.camel_case`), so the schema's names, the
stack-config keys and the error messages (`config outspeed-token:rateLimit.banSeconds: ...`)
all say the same thing. `to_config` turns args into the camelCase mapping that
`outspeed_token.settings.parse_mapping` validates: there is ONE validation path, and stack config
(`__main__.py`, through `from_config`) is just one producer of args.

The field docstrings become the schema's descriptions (the analyzer reads them from this
source). No `from __future__ import annotations` here: the analyzer reads the annotations
as objects.

Pure: no pulumi_gcp, no Pulumi runtime.
"""
import keyword
import re
from typing import Any, Mapping, Sequence, TypedDict

try:  # typing has NotRequired from 3.11
    from typing import NotRequired
except ImportError:  # pragma: no cover - 3.10
    from typing_extensions import NotRequired

import pulumi


class RateLimitArgs(TypedDict, total=False):
    requests_per_minute: pulumi.Input[int]
    """Cloud Armor per-IP threshold per 60 s (default 60); over it an IP gets 429 and is banned."""
    ban_seconds: pulumi.Input[int]
    """How long an IP over the threshold stays banned (default 300)."""


class IdTokenArgs(TypedDict, total=False):
    issuer: pulumi.Input[str]
    """Expected `iss` of callers' ID tokens (https), e.g. https://securetoken.google.com/<firebase-project-id>."""
    audience: pulumi.Input[str]
    """Expected `aud` (Firebase: the project id)."""
    jwks_uri: pulumi.Input[str]
    """The issuer's JWKS (https); unset or empty = OIDC discovery from the issuer."""
    allow_anonymous: pulumi.Input[bool]
    """Accept Firebase anonymous users (default false: 403 anonymous_not_allowed)."""


class AppCheckArgs(TypedDict, total=False):
    project_number: pulumi.Input[str]
    """Firebase project NUMBER (digits), not the project id."""
    app_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Firebase app ids allowed; empty = any app of the project."""
    consume: pulumi.Input[bool]
    """Replay protection: consume each (limited-use) App Check token once at Firebase (default false)."""


class CallerAuthArgs(TypedDict, total=False):
    id_token: pulumi.Input[IdTokenArgs]
    """Callers send Authorization: Bearer <ID token> from this OIDC issuer."""
    app_check: pulumi.Input[AppCheckArgs]
    """Callers send X-Firebase-AppCheck from a genuine app of this Firebase project."""
    anonymous: pulumi.Input[bool]
    """true = knowingly verify no callers (auth_enabled only; preview warns)."""


class MonitoringConfigArgs(TypedDict, total=False):
    """Log-based metrics, alert policies and a dashboard. Further alert fields may be added in
    minor versions (new optional keys only)."""
    enabled: pulumi.Input[bool]
    """false creates no metrics, alerts or dashboard (default true)."""
    alert_emails: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Addresses notified by every alert (each an email notification channel)."""
    mints_per_hour_alert: pulumi.Input[int]
    """Spend watch: alert above this many keys minted per hour (0 = off; default 1000)."""
    upstream_error_ratio: pulumi.Input[float]
    """Alert when this share of calls to Outspeed fails over the window (default 0.1)."""
    upstream_error_window_minutes: pulumi.Input[int]
    """Window of the upstream-failure ratio (default 10)."""
    upstream_min_calls: pulumi.Input[int]
    """And only with at least this many calls in that window (0 = the ratio alone; default 10)."""
    alert_window_minutes: pulumi.Input[int]
    """Window of the key-rejected, function-failing and Cloud Armor alerts (default 5)."""
    armor_denials_per_minute_alert: pulumi.Input[int]
    """Cloud Armor denials per minute that count as a surge (edge only; 0 = off; default 60)."""
    runbook_url: pulumi.Input[str]
    """Optional https URL of the runbook (this repository's docs/operations.md), linked from every alert."""
    unauthenticated_per_minute_alert: pulumi.Input[int]
    """Callers refused with 401 per minute that count as a surge (callerAuth only; 0 = off; default 60)."""


class QuotaBudgetArgs(TypedDict):
    count: pulumi.Input[int]
    """Mints allowed per window."""
    window_seconds: pulumi.Input[int]
    """Window length in seconds (windows are aligned to the clock)."""


class QuotasArgs(TypedDict, total=False):
    per_caller: pulumi.Input[Sequence[pulumi.Input[QuotaBudgetArgs]]]
    """Budgets per verified ID-token subject (needs caller_auth.id_token)."""
    global_: pulumi.Input[Sequence[pulumi.Input[QuotaBudgetArgs]]]
    """Budgets for every mint of this endpoint together (schema and stack-config name: `global`)."""
    store: pulumi.Input[str]
    """memorystore (the endpoint creates Memorystore for Redis) or external (bring redis_url)."""
    redis_url: pulumi.Input[str]
    """Secret rediss:// URL of the store, with store external."""
    fail_open: pulumi.Input[bool]
    """Store unreachable: false = 503 quota_unavailable (default), true = mint and log."""


class TokenEndpointArgs(TypedDict):
    outspeed_api_key: pulumi.Input[str]
    """The Outspeed API key (required). Treated as a secret: stored in Secret Manager, encrypted in state."""
    project: NotRequired[pulumi.Input[str]]
    """Google Cloud project id; default: the gcp provider's project (gcp:project)."""
    region: NotRequired[pulumi.Input[str]]
    """Region of the function; default: the gcp provider's region (gcp:region)."""
    name_prefix: NotRequired[pulumi.Input[str]]
    """Prefix of every Google Cloud resource name (lower-case letters, digits, dashes, at most 40).
    Default: derived from the Pulumi project, stack and this endpoint's name (unique per endpoint)."""
    auth_enabled: NotRequired[pulumi.Input[bool]]
    """Prod mode (default true): HTTPS load balancer + Cloud Armor, ingress from the load balancer only,
    https origins only. false = dev: the function's own URL, zero idle cost."""
    allowed_hostnames: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Exact hostnames browsers may call from; no scheme, path, port or wildcard. Empty = any origin."""
    agent_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Outspeed agent ids this endpoint may mint keys for (required with auth_enabled unless session_config)."""
    session_config: NotRequired[pulumi.Input[Mapping[str, Any]]]
    """Server-side SessionConfig (model, instructions, voice, ...) for the programmatic flow."""
    allow_client_session_config: NotRequired[pulumi.Input[bool]]
    """Forward a client-sent SessionConfig (legacy flow). Only with auth_enabled false."""
    outspeed_api_base: NotRequired[pulumi.Input[str]]
    """Upstream base URL (https; default https://api.outspeed.com)."""
    domain: NotRequired[pulumi.Input[str]]
    """Hostname of the endpoint (managed certificate; token_url https://<domain>/token). Required with auth_enabled."""
    rate_limit: NotRequired[pulumi.Input[RateLimitArgs]]
    """Cloud Armor per-IP limit (auth_enabled only)."""
    min_instances: NotRequired[pulumi.Input[int]]
    """Minimum function instances (default 0: scale to zero)."""
    max_instances: NotRequired[pulumi.Input[int]]
    """Maximum function instances (default 10)."""
    concurrency: NotRequired[pulumi.Input[int]]
    """Requests served at once per instance (default 80)."""
    memory: NotRequired[pulumi.Input[str]]
    """Memory per instance, e.g. 256Mi (default), 512Mi, 1Gi."""
    caller_auth: NotRequired[pulumi.Input[CallerAuthArgs]]
    """Who may call (checked in the function): ID tokens and/or App Check, or anonymous."""
    monitoring: NotRequired[pulumi.Input[MonitoringConfigArgs]]
    """Metrics, alert policies and a dashboard (default on)."""
    quotas: NotRequired[pulumi.Input[QuotasArgs]]
    """Mint budgets enforced by the function in a shared store (the spend ceiling)."""


# Fields that are not stack-config keys of the endpoint's settings: the component resolves them.
COMPONENT_FIELDS = ("outspeed_api_key", "project", "region", "name_prefix")
# Nested typed objects, by config path: their keys are converted; every other object
# (session_config: the Outspeed API's own snake_case fields) is passed through untouched.
TYPED_OBJECTS = {"rateLimit", "callerAuth", "callerAuth.idToken", "callerAuth.appCheck", "monitoring", "quotas"}
TYPED_LISTS = {"quotas.perCaller", "quotas.global"}  # lists of typed objects


def camel(name: str) -> str:
    """The analyzer's rule: `rate_limit` -> `rateLimit`; a trailing `_` (Python keyword) drops."""
    first, *rest = name.split("_")
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def snake(name: str) -> str:
    """camel's inverse for this schema's names: `rateLimit` -> `rate_limit`, `global` -> `global_`."""
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return out + "_" if keyword.iskeyword(out) else out


def _convert(value: Any, path: str, key_fn) -> Any:
    """Rename keys of the typed objects under `path` (by config path). Anything not of the
    expected shape is passed through as it is, for the settings parser to refuse by name."""
    if path in TYPED_LISTS and isinstance(value, (list, tuple)):
        return [_convert_object(v, path, key_fn) if isinstance(v, Mapping) else v for v in value]
    if path in TYPED_OBJECTS and isinstance(value, Mapping):
        return _convert_object(value, path, key_fn)
    return value


def _convert_object(value: Mapping, path: str, key_fn) -> dict:
    out = {}
    for key, item in value.items():
        new = key_fn(key) if isinstance(key, str) else key
        config_name = new if key_fn is camel else key  # paths are always in config (camelCase) names
        out[new] = _convert(item, f"{path}.{config_name}", key_fn)
    return out


def to_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """Args -> the bare camelCase stack-config mapping `outspeed_token.settings.parse_mapping` validates.

    Only fields the caller set (not None) appear, so the parser's defaults (Pulumi.yaml's)
    apply to the rest, exactly as for a stack that does not set a key."""
    out = {}
    for field, value in args.items():
        if field in COMPONENT_FIELDS or value is None:
            continue
        key = camel(field)
        out[key] = _convert(value, key, camel)
    return out


def from_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stack config (bare camelCase key -> value, as `pulumi.Config.get` or a stack file gives
    it) -> TokenEndpointArgs fields. Objects and lists may arrive as JSON text (the CLI's form);
    text that is not valid JSON is passed through for the parser to refuse, naming the key."""
    import json

    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[snake(key)] = _convert(value, key, snake)
    return out
