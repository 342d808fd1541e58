"""Stack config -> validated, typed settings, and settings -> the function's environment.

Pure: no Pulumi runtime and no pulumi_gcp, so it is unit-testable and usable by local tools
(`make run` configures the local function from Pulumi.dev.yaml through `function_environment`).

Every bad value raises one `ConfigError` naming the key and the fix; `ConfigError` is a
`pulumi.RunError`, so `pulumi preview` prints the message without a stack trace and fails.
Values may arrive as the Pulumi CLI passes them (strings; JSON for lists and objects) or as
YAML-typed values (from `infra.stackfiles`); both parse the same way.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from pulumi import RunError

if TYPE_CHECKING:
    from .monitoring import MonitoringSettings

PROJECT = "outspeed-token"

# Mirrors the defaults declared in Pulumi.yaml (a test keeps the two identical), so the
# program behaves the same whether or not the CLI has already applied them.
DEFAULTS: dict[str, Any] = {
    "authEnabled": True,
    "allowedHostnames": [],
    "agentIds": [],
    "sessionConfig": {},
    "allowClientSessionConfig": False,
    "outspeedApiBase": "https://api.outspeed.com",
    "domain": "",
    "rateLimit": {"requestsPerMinute": 60, "banSeconds": 300},
    "minInstances": 0,
    "maxInstances": 10,
    "concurrency": 80,
    "memory": "256Mi",
    "monitoring": {"enabled": True, "alertEmails": [], "mintsPerHourAlert": 1000, "upstreamErrorRatio": 0.1,
                   "upstreamErrorWindowMinutes": 10, "upstreamMinCalls": 10, "alertWindowMinutes": 5,
                   "armorDenialsPerMinuteAlert": 60, "runbookUrl": ""},
    "callerAuth": {},
}

UPSTREAM_TIMEOUT_SECONDS = 10
RATE_LIMIT_INTERVAL_SECONDS = 60
MAX_CONCURRENCY = 1000  # Cloud Run's per-instance ceiling

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_AGENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # the function's own agentId format
# Cloud Armor's ceiling for a rate-based ban's threshold count.
RATE_BAN_MAX_COUNT = 10_000
_MEMORY = re.compile(r"^[1-9][0-9]*(?:Mi|Gi|M|G)$")


def memory_mib(memory: str) -> float:
    """A validated memory size (256Mi, 1Gi, 512M, 1G) in MiB."""
    number, unit = re.fullmatch(r"([0-9]+)(Mi|Gi|M|G)", memory).groups()
    factor = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[unit]
    return int(number) * factor


class ConfigError(RunError):
    """A stack config value is wrong. `key` names it; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        qualified = key if ":" in key else f"{PROJECT}:{key}"
        super().__init__(f"config {qualified}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class RateLimit:
    requests_per_minute: int
    ban_seconds: int


@dataclass(frozen=True)
class IdTokenAuth:
    issuer: str  # exact `iss`
    audience: str  # expected `aud`
    jwks_uri: Optional[str] = None  # None: OIDC discovery from the issuer


@dataclass(frozen=True)
class AppCheckAuth:
    project_number: str  # digits
    app_ids: tuple[str, ...] = ()  # empty: any app of the project


@dataclass(frozen=True)
class CallerAuth:
    """Who may call (DESIGN.md, "Caller authentication"). All unset = no caller check."""
    id_token: Optional[IdTokenAuth] = None
    app_check: Optional[AppCheckAuth] = None
    anonymous: bool = False

    @property
    def verifies_callers(self) -> bool:
        return self.id_token is not None or self.app_check is not None


@dataclass(frozen=True)
class Settings:
    auth_enabled: bool
    allowed_hostnames: tuple[str, ...]
    agent_ids: tuple[str, ...]
    session_config_json: Optional[str]  # canonical JSON of the server-side SessionConfig, or None
    allow_client_session_config: bool
    api_base: str
    domain: str
    rate_limit: RateLimit
    min_instances: int
    max_instances: int
    concurrency: int
    memory: str
    caller_auth: CallerAuth = CallerAuth()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    monitoring: Optional[MonitoringSettings] = None  # infra.monitoring; None = no monitoring

    # Everything below is derived from authEnabled, never from the stack's name.
    @property
    def edge_enabled(self) -> bool:
        return self.auth_enabled

    @property
    def https_origins_only(self) -> bool:
        return self.auth_enabled

    @property
    def allow_any_agent(self) -> bool:
        """Whether an empty agentIds means "any agent" (dev) rather than "no agent flow"
        (prod: only the server's sessionConfig is served, any client agentId gets 403)."""
        return not self.auth_enabled

    @property
    def available_cpu(self) -> Optional[str]:
        """Cloud Run serves more than one request per instance only with a whole vCPU. Below
        2Gi a function's default CPU is a fraction, so pin 1; from 2Gi up the default is 1 or
        more (and 1 vCPU allows at most 4Gi), so leave it."""
        return "1" if self.concurrency > 1 and memory_mib(self.memory) < 2048 else None

    @property
    def ingress(self) -> str:
        return "ALLOW_INTERNAL_AND_GCLB" if self.auth_enabled else "ALLOW_ALL"

    @property
    def session_config(self) -> Optional[dict]:
        return None if self.session_config_json is None else json.loads(self.session_config_json)


# --- parsing helpers: each raises ConfigError naming the key ---------------------------------

def _json(key: str, value: Any, kind: str, example: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(key, f"must be {kind}, got {value!r}", f"set it as {kind}, e.g. {example}") from None


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    path = " --path" if "." in key else ""  # nested keys (callerAuth.anonymous) need --path
    raise ConfigError(key, f"must be true or false, got {value!r}", f"pulumi config set{path} {key} true|false")


def _int(key: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    number: Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    if number is None:
        raise ConfigError(key, f"must be a whole number, got {value!r}", f"pulumi config set {key} <number>")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        problem = "must be positive" if minimum == 1 and number < 1 else f"must be {bound}"
        raise ConfigError(key, f"{problem}, got {number}", f"set {key} to a number {bound}")
    return number


def _str_list(key: str, value: Any) -> list[str]:
    value = _json(key, value, "a list of strings", '["a", "b"]')
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a list of strings, got {value!r}",
                          f"list it in Pulumi.<stack>.yaml, e.g. {PROJECT}:{key}: [\"a\", \"b\"]")
    return value


def _hostname(key: str, raw: str) -> str:
    """One exact hostname: no wildcard, scheme, path or port; returned lower-cased."""
    host = raw.strip().lower()
    fix = f"list exact hostnames only, e.g. app.example.com (got {raw!r})"
    if "*" in host:
        raise ConfigError(key, f"{raw!r} contains a wildcard; wildcards are not supported",
                          "list every hostname explicitly, e.g. app.example.com and www.example.com")
    if "://" in host:
        raise ConfigError(key, f"{raw!r} has a scheme", f"drop the scheme: {host.split('://', 1)[1].split('/')[0]}")
    if "/" in host:
        raise ConfigError(key, f"{raw!r} has a path", f"drop the path: {host.split('/', 1)[0]}")
    if ":" in host:
        raise ConfigError(key, f"{raw!r} has a port; ports are ignored when origins are matched",
                          f"drop the port: {host.split(':', 1)[0]}")
    if not _HOSTNAME.match(host):
        raise ConfigError(key, f"{raw!r} is not a hostname", fix)
    return host


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


_HTTPS_URL = re.compile(r"https://([A-Za-z0-9.-]+)(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/:@!$&'()*+,;=-]*)?")
_PROJECT_NUMBER = re.compile(r"[0-9]{1,20}")
_APP_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # Firebase app ids look like 1:123456789012:web:0a1b2c3d
CALLER_AUTH_EXAMPLE = ("callerAuth: {idToken: {issuer: https://securetoken.google.com/<project-id>, "
                       "audience: <project-id>}}")


def _object(key: str, value: Any, fields: tuple[str, ...], example: str) -> dict:
    """A mapping whose keys are all among `fields` (unknown keys are typos: refused)."""
    value = _json(key, value, "an object", example)
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be an object, got {value!r}", f"write it as a YAML mapping, e.g. {example}")
    unknown = sorted(str(k) for k in set(value) - set(fields))
    if unknown:
        raise ConfigError(key, f"unknown field(s) {', '.join(unknown)}", f"use only {', '.join(fields)}")
    return value


def _https_url(key: str, value: Any, example: str) -> str:
    """An https URL (no query, fragment or credentials). Loopback http is refused here even
    though the function accepts it for local runs: a deployed function cannot reach loopback."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"must be an https URL, got {value!r}", f"set it, e.g. {example}")
    url = value.strip()
    if url.lower().startswith("http://"):
        raise ConfigError(key, f"must be https, got {url!r} (a deployed function cannot reach a local http "
                               "server; http on loopback is only for local runs, which set AUTH_* themselves)",
                          f"use the issuer's https URL, e.g. {example}")
    match = _HTTPS_URL.fullmatch(url)
    if match is None or "@" in url.split("/", 3)[2] or not _HOSTNAME.match(match.group(1).lower()):
        raise ConfigError(key, f"must be an https URL without query, fragment or credentials, got {url!r}",
                          f"e.g. {example}")
    return url


def _caller_auth(raw: Any) -> CallerAuth:
    top = _object("callerAuth", raw, ("idToken", "appCheck", "anonymous"), CALLER_AUTH_EXAMPLE)

    id_token = None
    if top.get("idToken") is not None:
        it = _object("callerAuth.idToken", top["idToken"], ("issuer", "audience", "jwksUri"),
                     "{issuer: https://securetoken.google.com/<project-id>, audience: <project-id>}")
        issuer = _https_url("callerAuth.idToken.issuer", it.get("issuer"),
                            "https://securetoken.google.com/<project-id>")
        audience = it.get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ConfigError("callerAuth.idToken.audience", f"must be a non-empty string, got {audience!r}",
                              "set the audience your issuer puts in `aud` (Firebase: the project id)")
        jwks = it.get("jwksUri")
        jwks_uri = None
        if jwks is not None and not (isinstance(jwks, str) and not jwks.strip()):  # "" = discovery
            jwks_uri = _https_url("callerAuth.idToken.jwksUri", jwks, "https://<issuer>/.well-known/jwks.json")
        id_token = IdTokenAuth(issuer=issuer, audience=audience.strip(), jwks_uri=jwks_uri)

    app_check = None
    if top.get("appCheck") is not None:
        ac = _object("callerAuth.appCheck", top["appCheck"], ("projectNumber", "appIds"),
                     '{projectNumber: "123456789012"}')
        number = ac.get("projectNumber")
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            number = str(number)  # YAML reads an unquoted number as an int
        if not isinstance(number, str) or not _PROJECT_NUMBER.fullmatch(number.strip()):
            raise ConfigError("callerAuth.appCheck.projectNumber", f"must be digits only, got {number!r}",
                              "use the Firebase project NUMBER (Project settings > General), quoted, "
                              'e.g. "123456789012", not the project id')
        app_ids = _str_list("callerAuth.appCheck.appIds", ac.get("appIds", []))
        for app_id in app_ids:
            if not _APP_ID.fullmatch(app_id):
                raise ConfigError("callerAuth.appCheck.appIds", f"{app_id!r} is not a Firebase app id",
                                  "copy app ids from Firebase Project settings, e.g. 1:123456789012:web:0a1b2c3d")
        app_check = AppCheckAuth(project_number=number.strip(), app_ids=_unique(app_ids))

    anonymous = _bool("callerAuth.anonymous", top.get("anonymous", False))
    if anonymous and (id_token or app_check):
        raise ConfigError("callerAuth.anonymous", "is true while idToken/appCheck verify callers (contradictory)",
                          "remove anonymous (or set it false) to keep verifying callers")
    return CallerAuth(id_token=id_token, app_check=app_check, anonymous=anonymous)


# --- the parser --------------------------------------------------------------------------------

def parse(get: Callable[[str], Any]) -> Settings:
    """Build Settings from `get(bare_key)` (None = unset -> default). Raises ConfigError."""

    def value(key: str) -> Any:
        raw = get(key)
        return DEFAULTS[key] if raw is None else raw

    auth = _bool("authEnabled", value("authEnabled"))

    hostnames = _unique([_hostname("allowedHostnames", h) for h in _str_list("allowedHostnames", value("allowedHostnames"))])

    agent_ids = _str_list("agentIds", value("agentIds"))
    for agent in agent_ids:
        if not _AGENT_ID.match(agent):
            raise ConfigError("agentIds", f"{agent!r} is not an agent id (1-128 of A-Z a-z 0-9 . _ : -)",
                              "copy the agent id exactly from the Outspeed dashboard")
    agent_ids = _unique(agent_ids)

    session = _json("sessionConfig", value("sessionConfig"), "an object", '{"model": "...", "instructions": "..."}')
    if not isinstance(session, dict):
        raise ConfigError("sessionConfig", f"must be an object (a SessionConfig), got {type(session).__name__} {session!r}",
                          f"write it as a YAML mapping under {PROJECT}:sessionConfig, e.g. model: ..., instructions: ...; "
                          "use {} for none")
    session_json = json.dumps(session, sort_keys=True, separators=(",", ":")) if session else None

    allow_client = _bool("allowClientSessionConfig", value("allowClientSessionConfig"))

    api_base = str(value("outspeedApiBase")).strip().rstrip("/")
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?", api_base):
        raise ConfigError("outspeedApiBase", f"must be an https:// URL without query, got {api_base!r}",
                          f"pulumi config set outspeedApiBase {DEFAULTS['outspeedApiBase']}")

    domain_raw = value("domain")
    if not isinstance(domain_raw, str):
        raise ConfigError("domain", f"must be a hostname string, got {domain_raw!r}", "pulumi config set domain token.example.com")
    domain = _hostname("domain", domain_raw) if domain_raw.strip() else ""

    rate = _json("rateLimit", value("rateLimit"), "an object", '{"requestsPerMinute": 60, "banSeconds": 300}')
    if not isinstance(rate, dict):
        raise ConfigError("rateLimit", f"must be an object, got {rate!r}",
                          "set rateLimit: {requestsPerMinute: 60, banSeconds: 300} in the stack file")
    unknown = sorted(set(rate) - {"requestsPerMinute", "banSeconds"})
    if unknown:
        raise ConfigError("rateLimit", f"unknown field(s) {', '.join(unknown)}",
                          "use only requestsPerMinute and banSeconds")
    rate_limit = RateLimit(
        requests_per_minute=_int("rateLimit.requestsPerMinute",
                                 rate.get("requestsPerMinute", DEFAULTS["rateLimit"]["requestsPerMinute"]), 1,
                                 RATE_BAN_MAX_COUNT),
        ban_seconds=_int("rateLimit.banSeconds", rate.get("banSeconds", DEFAULTS["rateLimit"]["banSeconds"]), 1),
    )

    min_instances = _int("minInstances", value("minInstances"), 0)
    max_instances = _int("maxInstances", value("maxInstances"), 1)
    if min_instances > max_instances:
        raise ConfigError("minInstances", f"{min_instances} is above maxInstances {max_instances}",
                          "lower minInstances or raise maxInstances")
    concurrency = _int("concurrency", value("concurrency"), 1, MAX_CONCURRENCY)
    memory = str(value("memory")).strip()
    if not _MEMORY.match(memory):
        raise ConfigError("memory", f"must be a size such as 256Mi or 1Gi, got {memory!r}", "pulumi config set memory 256Mi")

    caller_auth = _caller_auth(value("callerAuth"))

    if auth:
        if not domain:
            raise ConfigError("domain", "is required when authEnabled is true (it names the managed TLS certificate)",
                              "pulumi config set domain token.example.com, or set authEnabled false")
        if allow_client:
            raise ConfigError("allowClientSessionConfig",
                              "must be false when authEnabled is true (clients may not choose the session config in prod)",
                              "pulumi config set allowClientSessionConfig false; put the config in sessionConfig instead")
        if not agent_ids and session_json is None:
            raise ConfigError("agentIds",
                              "is empty and sessionConfig is unset; with authEnabled true the endpoint must not mint keys "
                              "for any agent",
                              "list your agents: pulumi config set --path 'agentIds[0]' <agent-id> (or set sessionConfig)")
        if not caller_auth.verifies_callers and not caller_auth.anonymous:
            raise ConfigError("callerAuth",
                              "sets no caller check; with authEnabled true callers must prove who they are (an "
                              "Origin header binds browsers only: any script can send one)",
                              f"set callerAuth.idToken and/or callerAuth.appCheck, e.g. {CALLER_AUTH_EXAMPLE}; "
                              "or knowingly run without it: callerAuth: {anonymous: true}")

    from .monitoring import parse_monitoring  # here: infra.monitoring imports this module
    monitoring = parse_monitoring(value("monitoring"))

    warnings = []
    if auth and not hostnames:
        warnings.append(f"{PROJECT}:allowedHostnames is empty with authEnabled true: any Origin (and requests with "
                        "no Origin) may fetch keys. Fine for native apps; list your web hostnames otherwise.")
    if auth and caller_auth.anonymous:
        warnings.append(f"{PROJECT}:callerAuth.anonymous is true: callers are not verified. Anyone who forges an "
                        "Origin header (any script, e.g. curl) can mint keys billed to your Outspeed account, "
                        f"limited only by rateLimit ({rate_limit.requests_per_minute} per minute per IP). "
                        "Set callerAuth.idToken and/or callerAuth.appCheck instead.")

    return Settings(
        auth_enabled=auth,
        allowed_hostnames=hostnames,
        agent_ids=agent_ids,
        session_config_json=session_json,
        allow_client_session_config=allow_client,
        api_base=api_base,
        domain=domain,
        rate_limit=rate_limit,
        min_instances=min_instances,
        max_instances=max_instances,
        concurrency=concurrency,
        memory=memory,
        caller_auth=caller_auth,
        warnings=tuple(warnings) + monitoring.warnings,
        monitoring=monitoring,
    )


def parse_mapping(values: Mapping[str, Any]) -> Settings:
    """Settings from bare key -> value (e.g. `infra.stackfiles.project_values(...)`)."""
    return parse(values.get)


# How the function's server runs, the same for every stack (tools/function_server.py serves
# local runs and tests with exactly these).
SERVER_ENVIRONMENT = {
    # functions-framework's ASGI mode: the CLI builds only the Starlette app and serves it with
    # gunicorn + one uvicorn worker (uvloop + httptools); the function is async.
    "FUNCTION_USE_ASGI": "true",
    # Trust no peer's X-Forwarded-For (gunicorn's default trusts 127.0.0.1, which uvicorn would
    # then use to rewrite the client address): the log's remoteIp is always the TCP peer, the
    # header stays apart as forwardedFor, whatever the client wrote.
    "FORWARDED_ALLOW_IPS": "",
}


def function_environment(settings: Settings, project: str) -> dict[str, str]:
    """The plain environment variables of DESIGN.md "Function environment".

    OUTSPEED_API_KEY is deliberately absent: it is a secret environment variable bound to a
    Secret Manager version, never a plain value. Empty lists are left unset (= any; for
    agents only where ALLOW_ANY_AGENT is true).
    """
    env = {
        "OUTSPEED_API_BASE": settings.api_base,
        "ALLOW_CLIENT_SESSION_CONFIG": "true" if settings.allow_client_session_config else "false",
        "HTTPS_ORIGINS_ONLY": "true" if settings.https_origins_only else "false",
        # Always explicit, so an empty ALLOWED_AGENT_IDS never silently means "any agent" in prod.
        "ALLOW_ANY_AGENT": "true" if settings.allow_any_agent else "false",
        "UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT_SECONDS),
        # The instance's request concurrency. Under the async server it no longer counts
        # threads: it sizes the function's upstream connection pool (one warm connection per
        # concurrent request).
        "THREADS": str(settings.concurrency),
        "GOOGLE_CLOUD_PROJECT": project,
        **SERVER_ENVIRONMENT,
    }
    if settings.allowed_hostnames:
        env["ALLOWED_HOSTNAMES"] = ",".join(settings.allowed_hostnames)
    if settings.agent_ids:
        env["ALLOWED_AGENT_IDS"] = ",".join(settings.agent_ids)
    if settings.session_config_json is not None:
        env["SESSION_CONFIG"] = settings.session_config_json
    # Caller checks (DESIGN.md "Caller authentication"); unset = that check is off.
    id_token, app_check = settings.caller_auth.id_token, settings.caller_auth.app_check
    if id_token is not None:
        env["AUTH_ID_TOKEN_ISSUER"] = id_token.issuer
        env["AUTH_ID_TOKEN_AUDIENCE"] = id_token.audience
        if id_token.jwks_uri:
            env["AUTH_ID_TOKEN_JWKS_URI"] = id_token.jwks_uri
    if app_check is not None:
        env["AUTH_APP_CHECK_PROJECT_NUMBER"] = app_check.project_number
        if app_check.app_ids:
            env["AUTH_APP_CHECK_APP_IDS"] = ",".join(app_check.app_ids)
    return dict(sorted(env.items()))
