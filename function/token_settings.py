"""The function's settings: read from the environment once, at cold start.

The infra hands everything over as environment variables (DESIGN.md, "Function
environment"). A malformed value stops the function at start-up with a message naming the
variable, instead of being discovered by the first unlucky request. A missing API key is not
a start-up error: the contract answers 500 `not_configured` per request, so the server still
starts and says why it cannot work.

Error messages may quote a malformed value of an ordinary setting, never OUTSPEED_API_KEY.
"""
from __future__ import annotations

import math
import os
import re
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple
from urllib.parse import unquote, urlsplit

import token_json
import token_rules
from token_rules import AGENT_ID_RE, APP_ID_RE, AUDIENCE_RE, HOSTNAME_RE, LOOPBACK_HOSTS, PROJECT_NUMBER_RE  # noqa: F401
from token_rules import RuleError

DEFAULT_API_BASE = "https://api.outspeed.com"
DEFAULT_TIMEOUT_SECONDS = 10.0

# The value rules (agent ids, hostnames, URLs, caller-auth values) live in token_rules,
# which the infra applies to stack config at preview too: one rule per value.
# A bearer token goes into an HTTP header: visible ASCII only.
API_KEY_RE = re.compile(r"[\x21-\x7e]+")


class SettingsError(ValueError):
    """A malformed environment variable; the message names it and says what is expected."""


# ---- caller authentication (DESIGN.md, "Caller authentication") ------------------------
DEFAULT_APP_CHECK_JWKS_URI = "https://firebaseappcheck.googleapis.com/v1/jwks"
# Replay protection (DESIGN.md, "Spend ceiling"): where tokens are consumed, and where the
# function gets its own access token (always plain http: the metadata server is link-local).
DEFAULT_APP_CHECK_API_BASE = "https://firebaseappcheck.googleapis.com"
DEFAULT_METADATA_HOST = "metadata.google.internal"
# GCE_METADATA_HOST as Google's client libraries read it: host[:port], no scheme or path.
METADATA_HOST_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                              r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class IdTokenCheck(NamedTuple):
    """`Authorization: Bearer <ID token>` from this issuer, for this audience."""
    issuer: str
    audience: str
    jwks_uri: str | None = None  # None: `jwks_uri` of {issuer}/.well-known/openid-configuration
    allow_anonymous: bool = False  # accept Firebase anonymous users (firebase.sign_in_provider)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class AppCheckCheck(NamedTuple):
    """`X-Firebase-AppCheck: <App Check token>` of this Firebase project (and these apps)."""
    project_number: str
    app_ids: frozenset[str] = frozenset()  # empty: any app of the project
    jwks_uri: str = DEFAULT_APP_CHECK_JWKS_URI
    consume: bool = False  # replay protection: each token consumed once at Firebase
    api_base: str = DEFAULT_APP_CHECK_API_BASE
    metadata_host: str = DEFAULT_METADATA_HOST

    @property
    def issuer(self) -> str:
        return f"https://firebaseappcheck.googleapis.com/{self.project_number}"

    @property
    def audience(self) -> str:
        return f"projects/{self.project_number}"


class CallerAuth(NamedTuple):
    id_token: IdTokenCheck | None = None
    app_check: AppCheckCheck | None = None

    @property
    def enabled(self) -> bool:
        return self.id_token is not None or self.app_check is not None


# ---- spend ceiling (DESIGN.md, "Spend ceiling") -----------------------------------------
DEFAULT_QUOTA_KEY_PREFIX = "outspeed-token"
QUOTA_KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_WINDOW_COUNT = 10 ** 9
MAX_WINDOW_SECONDS = 366 * 86400  # a year: longer budgets are not what fixed windows are for
_WINDOW_RE = re.compile(r"([0-9]{1,10})/([0-9]{1,10})")


class Window(NamedTuple):
    """At most `count` mints in each fixed window of `seconds` (aligned to the epoch). (The
    field `count` shadows tuple.count, which nothing here calls.)"""
    count: int
    seconds: int


def parse_windows(spec: str) -> tuple[Window, ...]:
    """`COUNT/SECONDS[,COUNT/SECONDS...]` -> windows, or ValueError saying what is wrong (never
    naming a variable: the caller does). Pure, so the infra's config check can share it: both
    counts and seconds are whole numbers from 1, no empty entries, one budget per window length."""
    windows: list[Window] = []
    for item in (part.strip() for part in spec.split(",")):
        match = _WINDOW_RE.fullmatch(item)
        if not item:
            raise ValueError("has an empty entry (comma-separated COUNT/SECONDS, no blanks)")
        if match is None:
            raise ValueError(f"entry {_show(item)} is not COUNT/SECONDS (whole numbers, like 5/3600)")
        count, seconds = int(match.group(1)), int(match.group(2))
        if not 1 <= count <= MAX_WINDOW_COUNT:
            raise ValueError(f"entry {_show(item)}: COUNT must be from 1 to {MAX_WINDOW_COUNT}")
        if not 1 <= seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"entry {_show(item)}: SECONDS must be from 1 to {MAX_WINDOW_SECONDS}")
        if any(window.seconds == seconds for window in windows):
            raise ValueError(f"has two budgets for a window of {seconds} s (one per window length)")
        windows.append(Window(count, seconds))
    return tuple(windows)


class RedisTarget(NamedTuple):
    """Where the quota store is. `password` is a secret: never printed (see __repr__)."""
    tls: bool
    host: str
    port: int
    db: int
    username: str | None = None
    password: str | None = None  # never in repr (below)
    ca_cert: str | None = None  # PEM; None = the system's CAs

    def __repr__(self) -> str:
        return (f"RedisTarget({'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}, "
                f"auth={'<set>' if self.password else None}, ca_cert={'<set>' if self.ca_cert else None})")


class Quotas(NamedTuple):
    store: RedisTarget
    per_caller: tuple[Window, ...] = ()
    global_: tuple[Window, ...] = ()
    fail_open: bool = False
    key_prefix: str = DEFAULT_QUOTA_KEY_PREFIX


class Settings(NamedTuple):
    api_key: str | None = None
    api_base: str = DEFAULT_API_BASE
    allowed_hostnames: frozenset[str] = frozenset()
    allowed_agent_ids: frozenset[str] = frozenset()
    session_config: Mapping[str, Any] | None = None
    allow_client_session_config: bool = False
    https_origins_only: bool = False
    upstream_timeout: float = DEFAULT_TIMEOUT_SECONDS
    threads: int = 8
    project: str | None = None
    # False (prod): an empty allowed_agent_ids means "no agent flow", not "any agent".
    allow_any_agent: bool = True
    caller_auth: CallerAuth = CallerAuth()
    quotas: Quotas | None = None  # None: no budgets, no store, redis never imported

    def __repr__(self) -> str:  # never print the key, even in a debugger or a traceback
        return (f"Settings(api_key={'<set>' if self.api_key else None}, api_base={self.api_base!r}, "
                f"allowed_hostnames={sorted(self.allowed_hostnames)}, allowed_agent_ids={sorted(self.allowed_agent_ids)}, "
                f"session_config={'<set>' if self.session_config is not None else None}, "
                f"allow_client_session_config={self.allow_client_session_config}, "
                f"https_origins_only={self.https_origins_only}, upstream_timeout={self.upstream_timeout}, "
                f"threads={self.threads}, project={self.project!r}, allow_any_agent={self.allow_any_agent}, "
                f"caller_auth={self.caller_auth!r}, quotas={self.quotas!r})")

    __str__ = __repr__


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _text(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name).lower()
    if not raw:
        return default
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise SettingsError(f"{name} must be 'true' or 'false', got {_show(env[name])}")


def _list(env: Mapping[str, str], name: str) -> list[str]:
    raw = _text(env, name)
    if not raw:
        return []
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise SettingsError(f"{name} has an empty entry: {_show(raw)} (comma-separated, no blanks)")
    return items


def _api_key(env: Mapping[str, str]) -> str | None:
    # Surrounding whitespace is the classic `echo key | gcloud secrets create` newline: drop it.
    key = _text(env, "OUTSPEED_API_KEY")
    if not key:
        return None
    if not API_KEY_RE.fullmatch(key):
        # Never quote the value: it is the secret.
        raise SettingsError("OUTSPEED_API_KEY contains spaces, control or non-ASCII characters; "
                            "store the bare key in Secret Manager")
    return key


def _rule(name: str, rule, *args, **kwargs):
    """Apply a token_rules rule; its problem becomes a SettingsError naming the variable."""
    try:
        return rule(*args, **kwargs)
    except RuleError as error:
        raise SettingsError(f"{name} {error}") from None


def _api_base(env: Mapping[str, str]) -> str:
    return _rule("OUTSPEED_API_BASE", token_rules.api_base, _text(env, "OUTSPEED_API_BASE") or DEFAULT_API_BASE)


def _hostnames(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(_rule("ALLOWED_HOSTNAMES", token_rules.hostname, name) for name in _list(env, "ALLOWED_HOSTNAMES"))


def _agent_ids(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(_rule("ALLOWED_AGENT_IDS", token_rules.agent_id, a) for a in _list(env, "ALLOWED_AGENT_IDS"))


def _session_config(env: Mapping[str, str]) -> Mapping[str, Any] | None:
    raw = _text(env, "SESSION_CONFIG")
    if not raw:
        return None
    try:
        config = token_json.loads(raw)
    except ValueError:
        config = None
        problem = "is not valid JSON"
    else:
        problem = "must be a JSON object (like {\"model\": \"outspeed-v1\"})"
    # The value itself is never quoted: it can be long and holds the agent's instructions.
    if not isinstance(config, dict):
        raise SettingsError(f"SESSION_CONFIG {problem}")
    _rule("SESSION_CONFIG", token_rules.session_config, config)  # what every programmatic request will send
    return MappingProxyType(config)


def _timeout(env: Mapping[str, str]) -> float:
    raw = _text(env, "UPSTREAM_TIMEOUT_SECONDS")
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(f"UPSTREAM_TIMEOUT_SECONDS must be a positive number of seconds, got {_show(raw)}")
    return value


def _threads(env: Mapping[str, str]) -> int:
    raw = _text(env, "THREADS")
    if not raw:
        return (os.cpu_count() or 1) * 4  # functions-framework's own default
    if not raw.isdigit():
        raise SettingsError(f"THREADS must be a whole number from 1 to {token_rules.MAX_THREADS}, got {_show(raw)}")
    return _rule("THREADS", token_rules.threads, int(raw))


def is_key_url(url: Any, *, query_ok: bool = True) -> bool:
    """An https URL (http only for a loopback host: local runs and tests) where keys or their
    issuer live: a host, no userinfo or fragment. The one rule for settings and for the
    `jwks_uri` an issuer's discovery document names."""
    return token_rules.is_url(url, query_ok=query_ok)


def _key_url(env: Mapping[str, str], name: str, *, query_ok: bool = True) -> str | None:
    """An https URL (http only for a loopback host) where keys or their issuer live."""
    raw = _text(env, name)
    return _rule(name, token_rules.url, raw, query_ok=query_ok) if raw else None


def _caller_auth(env: Mapping[str, str]) -> CallerAuth:
    issuer = _text(env, "AUTH_ID_TOKEN_ISSUER")
    issuer = _rule("AUTH_ID_TOKEN_ISSUER", token_rules.issuer, issuer) if issuer else None
    audience = _text(env, "AUTH_ID_TOKEN_AUDIENCE")
    id_jwks = _key_url(env, "AUTH_ID_TOKEN_JWKS_URI")
    allow_anonymous = _bool(env, "AUTH_ID_TOKEN_ALLOW_ANONYMOUS", False)
    id_token = None
    if issuer:
        if not audience:
            raise SettingsError("AUTH_ID_TOKEN_AUDIENCE is required with AUTH_ID_TOKEN_ISSUER "
                                "(the `aud` your issuer puts in ID tokens, e.g. the Firebase project id)")
        _rule("AUTH_ID_TOKEN_AUDIENCE", token_rules.audience, audience)
        _rule("AUTH_ID_TOKEN_ISSUER and AUTH_ID_TOKEN_AUDIENCE:", token_rules.id_token, issuer, audience)
        id_token = IdTokenCheck(issuer, audience, id_jwks, allow_anonymous)
    else:
        # A half-configured check would silently check nothing: refuse it.
        for name, value in (("AUTH_ID_TOKEN_AUDIENCE", audience), ("AUTH_ID_TOKEN_JWKS_URI", id_jwks),
                            ("AUTH_ID_TOKEN_ALLOW_ANONYMOUS", "true" if allow_anonymous else "")):
            if value:
                raise SettingsError(f"{name} is set but AUTH_ID_TOKEN_ISSUER is not: set both, or neither")

    project_number = _text(env, "AUTH_APP_CHECK_PROJECT_NUMBER")
    app_ids = _list(env, "AUTH_APP_CHECK_APP_IDS")
    app_jwks = _key_url(env, "AUTH_APP_CHECK_JWKS_URI") or DEFAULT_APP_CHECK_JWKS_URI
    app_check = None
    if project_number:
        _rule("AUTH_APP_CHECK_PROJECT_NUMBER", token_rules.project_number, project_number)
        for app_id in app_ids:
            _rule("AUTH_APP_CHECK_APP_IDS", token_rules.app_id, app_id)
        _rule("AUTH_APP_CHECK_APP_IDS (of AUTH_APP_CHECK_PROJECT_NUMBER)", token_rules.app_ids, project_number, app_ids)
        app_check = AppCheckCheck(project_number, frozenset(app_ids), app_jwks)
    elif app_ids:
        raise SettingsError("AUTH_APP_CHECK_APP_IDS is set but AUTH_APP_CHECK_PROJECT_NUMBER is not: "
                            "set the project number too")
    return CallerAuth(id_token, _with_consumption(env, app_check))


def _with_consumption(env: Mapping[str, str], app_check: AppCheckCheck | None) -> AppCheckCheck | None:
    """AUTH_APP_CHECK_CONSUME and where it goes (AUTH_APP_CHECK_API_BASE, GCE_METADATA_HOST)."""
    if not _bool(env, "AUTH_APP_CHECK_CONSUME", False):
        return app_check  # the other two are read only when used (the runtime may set GCE_METADATA_HOST)
    if app_check is None:
        # Nothing to consume: the setting would silently protect nothing.
        raise SettingsError("AUTH_APP_CHECK_CONSUME is true but AUTH_APP_CHECK_PROJECT_NUMBER is not set: "
                            "replay protection consumes App Check tokens, so App Check must be on")
    api_base = _key_url(env, "AUTH_APP_CHECK_API_BASE", query_ok=False) or DEFAULT_APP_CHECK_API_BASE
    metadata_host = _text(env, "GCE_METADATA_HOST") or DEFAULT_METADATA_HOST
    if not METADATA_HOST_RE.fullmatch(metadata_host):
        raise SettingsError("GCE_METADATA_HOST must be host[:port] (no scheme or path), "
                            f"like {DEFAULT_METADATA_HOST} or 127.0.0.1:8089, got {_show(metadata_host)}")
    return app_check._replace(consume=True, api_base=api_base.rstrip("/"), metadata_host=metadata_host)


def _redis_target(env: Mapping[str, str]) -> RedisTarget | None:
    """QUOTA_REDIS_URL (+ QUOTA_REDIS_CA_CERT). Messages never quote the URL: it may hold the
    store's password."""
    name = "QUOTA_REDIS_URL"
    raw = _text(env, name)
    if not raw:
        if _text(env, "QUOTA_REDIS_CA_CERT"):
            raise SettingsError("QUOTA_REDIS_CA_CERT is set but QUOTA_REDIS_URL is not: set both, or neither")
        return None
    shape = f"{name} must be rediss://[:password@]host:port[/db] (redis:// only for localhost, 127.0.0.1 or [::1])"
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise SettingsError(shape + "; it is not a well-formed URL") from None
    if parts.scheme not in ("redis", "rediss") or not host or parts.query or parts.fragment:
        raise SettingsError(shape)
    if parts.scheme == "redis" and host not in LOOPBACK_HOSTS:
        raise SettingsError(shape + "; plain redis:// would send the password and every key in clear text")
    path = parts.path.strip("/")
    if path and not (path.isdigit() and int(path) < 16):
        raise SettingsError(shape + "; the database must be a number from 0 to 15")
    ca_cert = _text(env, "QUOTA_REDIS_CA_CERT") or None
    if ca_cert is not None:
        if parts.scheme != "rediss":
            raise SettingsError("QUOTA_REDIS_CA_CERT is set but QUOTA_REDIS_URL is not rediss:// (a CA needs TLS)")
        if "-----BEGIN CERTIFICATE-----" not in ca_cert or "-----END CERTIFICATE-----" not in ca_cert:
            raise SettingsError("QUOTA_REDIS_CA_CERT must be PEM (-----BEGIN CERTIFICATE----- ...)")
    return RedisTarget(parts.scheme == "rediss", host, port or 6379, int(path or 0),
                       unquote(parts.username) if parts.username else None,
                       unquote(parts.password) if parts.password is not None else None, ca_cert)


def _windows(env: Mapping[str, str], name: str) -> tuple[Window, ...]:
    raw = _text(env, name)
    if not raw:
        return ()
    try:
        return parse_windows(raw)
    except ValueError as problem:
        raise SettingsError(f"{name} {problem}") from None


def _quotas(env: Mapping[str, str], caller_auth: CallerAuth) -> Quotas | None:
    store = _redis_target(env)
    per_caller, global_ = _windows(env, "QUOTA_PER_CALLER"), _windows(env, "QUOTA_GLOBAL")
    fail_open = _bool(env, "QUOTA_FAIL_OPEN", False)
    prefix = _text(env, "QUOTA_KEY_PREFIX") or DEFAULT_QUOTA_KEY_PREFIX
    if not QUOTA_KEY_PREFIX_RE.fullmatch(prefix):
        raise SettingsError(f"QUOTA_KEY_PREFIX must be 1-64 of A-Z a-z 0-9 . _ : -, got {_show(prefix)}")
    if per_caller and caller_auth.id_token is None:
        raise SettingsError("QUOTA_PER_CALLER needs AUTH_ID_TOKEN_ISSUER: a per-caller budget is keyed by the "
                            "verified ID-token subject")
    if store is None:
        for name, value in (("QUOTA_PER_CALLER", per_caller), ("QUOTA_GLOBAL", global_)):
            if value:
                raise SettingsError(f"{name} is set but QUOTA_REDIS_URL is not: budgets need the store")
        return None
    if not per_caller and not global_:
        raise SettingsError("QUOTA_REDIS_URL is set but neither QUOTA_PER_CALLER nor QUOTA_GLOBAL is: "
                            "set a budget, or unset the store")
    return Quotas(store, per_caller, global_, fail_open, prefix)


def from_env(env: Mapping[str, str]) -> Settings:
    """Parse and validate; raises SettingsError naming the first malformed variable."""
    caller_auth = _caller_auth(env)
    return Settings(
        api_key=_api_key(env),
        api_base=_api_base(env),
        allowed_hostnames=_hostnames(env),
        allowed_agent_ids=_agent_ids(env),
        session_config=_session_config(env),
        allow_client_session_config=_bool(env, "ALLOW_CLIENT_SESSION_CONFIG", False),
        https_origins_only=_bool(env, "HTTPS_ORIGINS_ONLY", False),
        upstream_timeout=_timeout(env),
        threads=_threads(env),
        project=_text(env, "GOOGLE_CLOUD_PROJECT") or None,
        # Unset = true: the documented dev meaning of an empty ALLOWED_AGENT_IDS (any agent).
        allow_any_agent=_bool(env, "ALLOW_ANY_AGENT", True),
        caller_auth=caller_auth,
        quotas=_quotas(env, caller_auth),
    )


# Cold start: the one and only read of the environment.
SETTINGS = from_env(os.environ)
