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
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Mapping

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


@dataclass(frozen=True)
class IdTokenCheck:
    """`Authorization: Bearer <ID token>` from this issuer, for this audience."""
    issuer: str
    audience: str
    jwks_uri: str | None = None  # None: `jwks_uri` of {issuer}/.well-known/openid-configuration

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class AppCheckCheck:
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


@dataclass(frozen=True)
class CallerAuth:
    id_token: IdTokenCheck | None = None
    app_check: AppCheckCheck | None = None

    @property
    def enabled(self) -> bool:
        return self.id_token is not None or self.app_check is not None


@dataclass(frozen=True)
class Settings:
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

    def __repr__(self) -> str:  # never print the key, even in a debugger or a traceback
        return (f"Settings(api_key={'<set>' if self.api_key else None}, api_base={self.api_base!r}, "
                f"allowed_hostnames={sorted(self.allowed_hostnames)}, allowed_agent_ids={sorted(self.allowed_agent_ids)}, "
                f"session_config={'<set>' if self.session_config is not None else None}, "
                f"allow_client_session_config={self.allow_client_session_config}, "
                f"https_origins_only={self.https_origins_only}, upstream_timeout={self.upstream_timeout}, "
                f"threads={self.threads}, project={self.project!r}, allow_any_agent={self.allow_any_agent}, "
                f"caller_auth={self.caller_auth!r})")

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
    id_token = None
    if issuer:
        if not audience:
            raise SettingsError("AUTH_ID_TOKEN_AUDIENCE is required with AUTH_ID_TOKEN_ISSUER "
                                "(the `aud` your issuer puts in ID tokens, e.g. the Firebase project id)")
        _rule("AUTH_ID_TOKEN_AUDIENCE", token_rules.audience, audience)
        _rule("AUTH_ID_TOKEN_ISSUER and AUTH_ID_TOKEN_AUDIENCE:", token_rules.id_token, issuer, audience)
        id_token = IdTokenCheck(issuer, audience, id_jwks)
    else:
        # A half-configured check would silently check nothing: refuse it.
        for name, value in (("AUTH_ID_TOKEN_AUDIENCE", audience), ("AUTH_ID_TOKEN_JWKS_URI", id_jwks)):
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
    return replace(app_check, consume=True, api_base=api_base.rstrip("/"), metadata_host=metadata_host)


def from_env(env: Mapping[str, str]) -> Settings:
    """Parse and validate; raises SettingsError naming the first malformed variable."""
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
        caller_auth=_caller_auth(env),
    )


# Cold start: the one and only read of the environment.
SETTINGS = from_env(os.environ)
