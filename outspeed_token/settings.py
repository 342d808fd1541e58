"""Stack config -> validated, typed settings, and settings -> the function's environment.

Pure: no Pulumi runtime and no pulumi_gcp, so it is unit-testable and usable by local tools
(`make run` configures the local function from Pulumi.dev.yaml through `function_environment`).

Every bad value raises one `ConfigError` naming the key and the fix; `ConfigError` is a
`pulumi.RunError`, so `pulumi preview` prints the message without a stack trace and fails.
Values may arrive as the Pulumi CLI passes them (strings; JSON for lists and objects) or as
YAML-typed values (from `outspeed_token.stackfiles`); both parse the same way.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional

from .parsing import PROJECT, ConfigError, rules  # noqa: F401  (re-exported: callers import them from here)
from .parsing import apply_rule as _rule
from .parsing import boolean as _bool
from .parsing import hostname as _hostname
from .parsing import https_url as _https_url
from .parsing import integer as _int
from .parsing import json_value as _json
from .parsing import object_fields as _object
from .parsing import str_list as _str_list
from .parsing import unique as _unique

from .monitoring_settings import MONITORING_DEFAULTS, MonitoringSettings, parse_monitoring

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
    "monitoring": MONITORING_DEFAULTS,
    "callerAuth": {},
    "quotas": {},
}

UPSTREAM_TIMEOUT_SECONDS = 10
RATE_LIMIT_INTERVAL_SECONDS = 60
MAX_CONCURRENCY = rules.MAX_THREADS  # Cloud Run's per-instance ceiling
# Cloud Armor's ceiling for a rate-based ban's threshold count.
RATE_BAN_MAX_COUNT = 10_000
_MEMORY = re.compile(r"^[1-9][0-9]*(?:Mi|Gi|M|G)$")


def memory_mib(memory: str) -> float:
    """A validated memory size (256Mi, 1Gi, 512M, 1G) in MiB."""
    number, unit = re.fullmatch(r"([0-9]+)(Mi|Gi|M|G)", memory).groups()
    factor = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[unit]
    return int(number) * factor


@dataclass(frozen=True)
class RateLimit:
    requests_per_minute: int
    ban_seconds: int


@dataclass(frozen=True)
class IdTokenAuth:
    issuer: str  # exact `iss`
    audience: str  # expected `aud`
    jwks_uri: Optional[str] = None  # None: OIDC discovery from the issuer
    allow_anonymous: bool = False  # accept Firebase anonymous users (sign_in_provider "anonymous")


@dataclass(frozen=True)
class AppCheckAuth:
    project_number: str  # digits
    app_ids: tuple[str, ...] = ()  # empty: any app of the project
    consume: bool = False  # replay protection: each token consumed once at Firebase


@dataclass(frozen=True)
class CallerAuth:
    """Who may call (DESIGN.md, "Caller authentication"). All unset = no caller check."""
    id_token: Optional[IdTokenAuth] = None
    app_check: Optional[AppCheckAuth] = None
    anonymous: bool = False

    @property
    def verifies_callers(self) -> bool:
        return self.id_token is not None or self.app_check is not None


# The function's own bounds for a budget (function/token_settings.py parse_windows), so preview
# refuses exactly what the cold start would.
MAX_BUDGET_COUNT = 10 ** 9
MAX_WINDOW_SECONDS = 366 * 86400
QUOTA_STORES = ("memorystore", "external")
# The memorystore store's /26 subnet (outspeed_token.quota_store) has 60 usable addresses; Direct VPC
# egress uses about two per instance and reserves them 16 at a time (Cloud Run, "Direct VPC
# egress with a VPC network", IP address allocation): above this many instances, scale-out can
# run out of addresses.
QUOTA_SUBNET_MAX_INSTANCES = 20


@dataclass(frozen=True)
class Budget:
    """At most `count` mints in each fixed window of `window_seconds` (DESIGN.md "Spend ceiling")."""
    count: int
    window_seconds: int

    @property
    def spec(self) -> str:
        return f"{self.count}/{self.window_seconds}"


@dataclass(frozen=True)
class Quotas:
    """Mint budgets and where they are kept. `redis_url` (store external) holds the store's
    password: kept out of repr, and the infra hands it on only as a Pulumi secret."""
    per_caller: tuple[Budget, ...]
    global_: tuple[Budget, ...]
    store: str  # one of QUOTA_STORES
    fail_open: bool = False
    redis_url: Optional[str] = field(default=None, repr=False)

    @property
    def memorystore(self) -> bool:
        return self.store == "memorystore"


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
    monitoring: Optional[MonitoringSettings] = None  # outspeed_token.monitoring; None = no monitoring
    quotas: Optional[Quotas] = None  # None = no spend ceiling

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


CALLER_AUTH_EXAMPLE = ("callerAuth: {idToken: {issuer: https://securetoken.google.com/<project-id>, "
                       "audience: <project-id>}}")


def _caller_auth(raw: Any) -> CallerAuth:
    top = _object("callerAuth", raw, ("idToken", "appCheck", "anonymous"), CALLER_AUTH_EXAMPLE)

    id_token = None
    if top.get("idToken") is not None:
        it = _object("callerAuth.idToken", top["idToken"], ("issuer", "audience", "jwksUri", "allowAnonymous"),
                     "{issuer: https://securetoken.google.com/<project-id>, audience: <project-id>}")
        issuer = _https_url("callerAuth.idToken.issuer", it.get("issuer"),
                            "https://securetoken.google.com/<project-id>", rules.issuer)
        audience = it.get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ConfigError("callerAuth.idToken.audience", f"must be a non-empty string, got {audience!r}",
                              "set the audience your issuer puts in `aud` (Firebase: the project id)")
        audience = _rule("callerAuth.idToken.audience", "set the audience your issuer puts in `aud` exactly "
                         "(Firebase: the project id)", rules.audience, audience)
        _rule("callerAuth.idToken", "make issuer and audience name the same Firebase project", rules.id_token,
              issuer, audience)
        jwks = it.get("jwksUri")
        jwks_uri = None
        if jwks is not None and not (isinstance(jwks, str) and not jwks.strip()):  # "" = discovery
            jwks_uri = _https_url("callerAuth.idToken.jwksUri", jwks, "https://<issuer>/.well-known/jwks.json",
                                  rules.url)
        allow_anonymous = _bool("callerAuth.idToken.allowAnonymous", it.get("allowAnonymous", False))
        id_token = IdTokenAuth(issuer=issuer, audience=audience, jwks_uri=jwks_uri,
                               allow_anonymous=allow_anonymous)

    app_check = None
    if top.get("appCheck") is not None:
        ac = _object("callerAuth.appCheck", top["appCheck"], ("projectNumber", "appIds", "consume"),
                     '{projectNumber: "123456789012"}')
        number = ac.get("projectNumber")
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            number = str(number)  # YAML reads an unquoted number as an int
        if not isinstance(number, str) or not rules.PROJECT_NUMBER_RE.fullmatch(number.strip()):
            raise ConfigError("callerAuth.appCheck.projectNumber", f"must be digits only, got {number!r}",
                              "use the Firebase project NUMBER (Project settings > General), quoted, "
                              'e.g. "123456789012", not the project id')
        number = _rule("callerAuth.appCheck.projectNumber", "use the Firebase project NUMBER",
                       rules.project_number, number)
        app_ids = _str_list("callerAuth.appCheck.appIds", ac.get("appIds", []))
        app_ids = _rule("callerAuth.appCheck.appIds", "copy app ids from Firebase Project settings > Your apps, "
                        f"e.g. 1:{number}:web:0a1b2c3d", rules.app_ids, number, app_ids)
        app_check = AppCheckAuth(project_number=number, app_ids=_unique(app_ids),
                                 consume=_bool("callerAuth.appCheck.consume", ac.get("consume", False)))

    anonymous = _bool("callerAuth.anonymous", top.get("anonymous", False))
    if anonymous and (id_token or app_check):
        raise ConfigError("callerAuth.anonymous", "is true while idToken/appCheck verify callers (contradictory)",
                          "remove anonymous (or set it false) to keep verifying callers")
    return CallerAuth(id_token=id_token, app_check=app_check, anonymous=anonymous)


QUOTAS_EXAMPLE = "{perCaller: [{count: 5, windowSeconds: 3600}], global: [{count: 500, windowSeconds: 3600}], store: memorystore}"
REDIS_URL_FIX = ("pulumi config set --secret --path quotas.redisUrl 'rediss://:<password>@<host>:<port>' "
                 "(--secret keeps the password out of the stack file and the state)")


def _budgets(key: str, raw: Any) -> tuple[Budget, ...]:
    items = _json(key, raw, "a list of budgets", "[{count: 5, windowSeconds: 3600}]")
    if not isinstance(items, list):
        raise ConfigError(key, f"must be a list of {{count, windowSeconds}} budgets, got {items!r}",
                          "e.g. [{count: 5, windowSeconds: 3600}, {count: 20, windowSeconds: 86400}]")
    budgets: list[Budget] = []
    for index, item in enumerate(items):
        at = f"{key}[{index}]"
        entry = _object(at, item, ("count", "windowSeconds"), "{count: 5, windowSeconds: 3600}")
        for name in ("count", "windowSeconds"):
            if entry.get(name) is None:
                raise ConfigError(f"{at}.{name}", "is missing", "give every budget a count and a windowSeconds, "
                                                                 "e.g. {count: 5, windowSeconds: 3600}")
        budget = Budget(_int(f"{at}.count", entry["count"], 1, MAX_BUDGET_COUNT),
                        _int(f"{at}.windowSeconds", entry["windowSeconds"], 1, MAX_WINDOW_SECONDS))
        if any(b.window_seconds == budget.window_seconds for b in budgets):
            raise ConfigError(at, f"is a second budget for a window of {budget.window_seconds} s",
                              "keep one budget per window length (the smaller count is the one that binds)")
        budgets.append(budget)
    return tuple(budgets)


def _redis_url(raw: Any, secret: Optional[bool]) -> str:
    """The external store's URL. Messages never quote it: it holds the store's password."""
    from urllib.parse import urlsplit

    key = "quotas.redisUrl"
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(key, "is required with store: external", REDIS_URL_FIX)
    url = raw.strip()
    shape = "must be rediss://[:password@]host:port[/db] without query or fragment"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(key, shape + " (it is not a well-formed URL; not shown: it may hold a password)",
                          REDIS_URL_FIX) from None
    if parts.scheme == "redis":
        # The function accepts redis:// only on loopback, and a deployed function has no loopback Redis.
        raise ConfigError(key, "is redis:// (no TLS): the password and every key would cross the network in "
                               "clear text, and the function accepts redis:// only on loopback, which a deployed "
                               "function cannot reach", "use the store's TLS endpoint: " + REDIS_URL_FIX)
    path = parts.path.strip("/")
    host_ok = bool(host) and (rules.HOSTNAME_RE.fullmatch(host.lower()) is not None or ":" in host)  # name, IPv4 or [IPv6]
    db_ok = not path or (path.isdigit() and int(path) < 16)
    if parts.scheme != "rediss" or not host_ok or parts.query or parts.fragment or not db_ok:
        raise ConfigError(key, shape + " and a database from 0 to 15 (value not shown: it may hold a password)",
                          REDIS_URL_FIX)
    if secret is False:
        raise ConfigError(key, "is not a Pulumi secret, so the store's password would sit in plain text in the "
                               "stack file and the state", REDIS_URL_FIX)
    return url


def _quotas(raw: Any, caller_auth: CallerAuth, secret: Optional[bool]) -> Optional[Quotas]:
    top = _object("quotas", raw, ("perCaller", "global", "store", "redisUrl", "failOpen"), QUOTAS_EXAMPLE)
    per_caller = _budgets("quotas.perCaller", top.get("perCaller") or [])
    global_ = _budgets("quotas.global", top.get("global") or [])
    store = top.get("store")
    store = store.strip() if isinstance(store, str) and store.strip() else None
    url = top.get("redisUrl")
    has_url = not (url is None or (isinstance(url, str) and not url.strip()))
    fail_open = _bool("quotas.failOpen", top.get("failOpen", False))
    if not per_caller and not global_:
        if store is not None or has_url:
            raise ConfigError("quotas", "sets a store but no budget (the function refuses a store without one, "
                                        "and a Memorystore instance would be billed for nothing)",
                              f"add perCaller and/or global budgets, e.g. {QUOTAS_EXAMPLE}, or remove quotas")
        return None
    if store is None:
        raise ConfigError("quotas.store", "is required with budgets (they are counted in a shared store)",
                          "store: memorystore (the stack creates Memorystore for Redis on a private VPC), or "
                          "store: external with redisUrl (your own Redis or Valkey, TLS)")
    if store not in QUOTA_STORES:
        raise ConfigError("quotas.store", f"must be memorystore or external, got {store!r}",
                          "store: memorystore, or store: external with redisUrl")
    if per_caller and caller_auth.id_token is None:
        raise ConfigError("quotas.perCaller", "needs callerAuth.idToken: a per-caller budget is keyed by the "
                                              "verified ID-token subject",
                          f"set {CALLER_AUTH_EXAMPLE}, or use only global budgets")
    redis_url = None
    if store == "external":
        redis_url = _redis_url(url, secret)
    elif has_url:
        raise ConfigError("quotas.redisUrl", "is set with store: memorystore (the stack creates the store and "
                                             "its URL itself)", "remove redisUrl, or set store: external")
    return Quotas(per_caller=per_caller, global_=global_, store=store, fail_open=fail_open, redis_url=redis_url)


# --- the parser --------------------------------------------------------------------------------

def check_secret_config(values: Mapping[str, Any], is_secret: Callable[[str], bool]) -> None:
    """What only stack config can get wrong, checked by the program before it builds the
    component: `quotas.redisUrl` set without `--secret` (it holds the store's password, which
    would then sit in plain text in the stack file). The component stores the URL as a secret
    either way; everything else about the value is checked by `parse`."""
    quotas = _json("quotas", values.get("quotas"), "an object", QUOTAS_EXAMPLE)
    url = quotas.get("redisUrl") if isinstance(quotas, dict) else None
    if isinstance(url, str) and url.strip() and is_secret("quotas") is False:
        raise ConfigError("quotas.redisUrl", "is not a Pulumi secret, so the store's password would sit in plain "
                                             "text in the stack file and the state", REDIS_URL_FIX)


def parse(get: Callable[[str], Any], is_secret: Optional[Callable[[str], bool]] = None) -> Settings:
    """Build Settings from `get(bare_key)` (None = unset -> default). Raises ConfigError.
    `is_secret(bare_key)`: whether the CLI passed that key as a secret (the program passes
    Pulumi's answer; local tools pass None, which skips that check)."""

    def value(key: str) -> Any:
        raw = get(key)
        return DEFAULTS[key] if raw is None else raw

    auth = _bool("authEnabled", value("authEnabled"))

    hostnames = _unique([_hostname("allowedHostnames", h) for h in _str_list("allowedHostnames", value("allowedHostnames"))])

    agent_ids = _unique([_rule("agentIds", "copy the agent id exactly from the Outspeed dashboard",
                               rules.agent_id, agent) for agent in _str_list("agentIds", value("agentIds"))])

    session = _json("sessionConfig", value("sessionConfig"), "an object", '{"model": "...", "instructions": "..."}')
    if not isinstance(session, dict):
        raise ConfigError("sessionConfig", f"must be an object (a SessionConfig), got {type(session).__name__} {session!r}",
                          f"write it as a YAML mapping under {PROJECT}:sessionConfig, e.g. model: ..., instructions: ...; "
                          "use {} for none")
    session_json = _rule("sessionConfig", "use plain JSON values (strings, finite numbers, true/false, null, "
                         "lists, mappings)", rules.session_config, session) if session else None

    allow_client = _bool("allowClientSessionConfig", value("allowClientSessionConfig"))

    api_base = _rule("outspeedApiBase", f"pulumi config set outspeedApiBase {DEFAULTS['outspeedApiBase']}",
                     rules.api_base, str(value("outspeedApiBase")).strip(), local_http=False)

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

    quotas = _quotas(value("quotas"), caller_auth, None if is_secret is None else is_secret("quotas"))

    # The caller-auth alerts and chart follow callerAuth, not a monitoring field.
    monitoring = replace(parse_monitoring(value("monitoring")), caller_checks=caller_auth.verifies_callers)

    warnings = []
    if auth and not hostnames:
        warnings.append(f"{PROJECT}:allowedHostnames is empty with authEnabled true: any Origin (and requests with "
                        "no Origin) may fetch keys. Fine for native apps; list your web hostnames otherwise.")
    if auth and caller_auth.anonymous:
        warnings.append(f"{PROJECT}:callerAuth.anonymous is true: callers are not verified. Anyone who forges an "
                        "Origin header (any script, e.g. curl) can mint keys billed to your Outspeed account, "
                        f"limited only by rateLimit ({rate_limit.requests_per_minute} per minute per IP). "
                        "Set callerAuth.idToken and/or callerAuth.appCheck instead.")
    if quotas is not None and quotas.memorystore and max_instances > QUOTA_SUBNET_MAX_INSTANCES:
        warnings.append(f"{PROJECT}:maxInstances is {max_instances} with quotas.store memorystore: the function's "
                        "/26 subnet (60 addresses, about two per instance under Direct VPC egress) fits about "
                        f"{QUOTA_SUBNET_MAX_INSTANCES} instances; beyond that new instances may fail to start. "
                        f"Keep maxInstances at {QUOTA_SUBNET_MAX_INSTANCES} or less, or use store: external.")
    if auth and quotas is None:
        warnings.append(f"{PROJECT}:quotas is unset with authEnabled true: nothing limits how many keys one verified "
                        "caller, or all callers together, may mint (sign-up is free; every key can start a billed "
                        f"session). Set per-caller and global budgets, e.g. quotas: {QUOTAS_EXAMPLE}.")

    if caller_auth.id_token is not None:
        warnings.extend(f"{PROJECT}:callerAuth.idToken.issuer {caller_auth.id_token.issuer!r} {problem}."
                        for problem in rules.issuer_warnings(caller_auth.id_token.issuer))

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
        quotas=quotas,
    )


def parse_mapping(values: Mapping[str, Any]) -> Settings:
    """Settings from bare key -> value (e.g. `outspeed_token.stackfiles.project_values(...)`)."""
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
    # Cloud Functions sets LOG_EXECUTION_ID=true in every 2nd-gen function unless told otherwise;
    # true sends each request through the framework's per-request wrapper instead of
    # token_handler.DirectApp (main.py), i.e. the slower route the README's figures do not measure.
    # Our log line carries the trace id; the execution-id label adds nothing to it.
    "LOG_EXECUTION_ID": "false",
}


def function_environment(settings: Settings, project: str, key_prefix: str = PROJECT) -> dict[str, str]:
    """The plain environment variables of DESIGN.md "Function environment".

    OUTSPEED_API_KEY and QUOTA_REDIS_URL are deliberately absent: they are secret environment
    variables bound to Secret Manager versions, never plain values; QUOTA_REDIS_CA_CERT comes
    from the Memorystore instance (outspeed_token.token_function). Empty lists are left unset (= any; for
    agents only where ALLOW_ANY_AGENT is true). `key_prefix`: the stack's resource prefix, the
    namespace of this endpoint's keys in the quota store.
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
        if id_token.allow_anonymous:  # unset = false: Firebase anonymous users are refused
            env["AUTH_ID_TOKEN_ALLOW_ANONYMOUS"] = "true"
    if app_check is not None:
        env["AUTH_APP_CHECK_PROJECT_NUMBER"] = app_check.project_number
        if app_check.app_ids:
            env["AUTH_APP_CHECK_APP_IDS"] = ",".join(app_check.app_ids)
        if app_check.consume:  # API base and metadata host keep their defaults when deployed
            env["AUTH_APP_CHECK_CONSUME"] = "true"
    # Spend ceiling (DESIGN.md "Spend ceiling"); unset = no budgets.
    quotas = settings.quotas
    if quotas is not None:
        if quotas.per_caller:
            env["QUOTA_PER_CALLER"] = ",".join(b.spec for b in quotas.per_caller)
        if quotas.global_:
            env["QUOTA_GLOBAL"] = ",".join(b.spec for b in quotas.global_)
        env["QUOTA_FAIL_OPEN"] = "true" if quotas.fail_open else "false"
        env["QUOTA_KEY_PREFIX"] = key_prefix
    return dict(sorted(env.items()))
