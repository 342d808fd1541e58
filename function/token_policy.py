"""Pure decisions of the token endpoint: paths, origin and CORS, body checks, which upstream
call a request becomes. No I/O here, so every rule is unit-testable and the handler stays a
straight line (DESIGN.md, "HTTP contract of the endpoint").
"""
from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import token_json
from token_settings import AGENT_ID_RE, CallerAuth, Settings

PATHS = frozenset({"/", "/token"})
METHODS = "POST, OPTIONS"
MAX_BODY_BYTES = 16 * 1024
SOURCE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RESERVED_FIELDS = frozenset({"agentId", "source"})

# A serialized origin as browsers send it (RFC 6454): scheme://host[:port], nothing else.
# Anything richer (userinfo, path, `null`, two origins joined by a comma) is not an origin
# we could allow, so it never reaches the hostname comparison.
_ORIGIN_RE = re.compile(r"(?i:(https?))://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

PREFLIGHT_HEADERS = (
    ("Access-Control-Allow-Methods", METHODS),
    ("Access-Control-Allow-Headers", "Content-Type"),
    ("Access-Control-Max-Age", "3600"),  # an hour: one preflight per page session, not per token
)

# code -> (status, human message); messages never echo the caller's input.
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "The body must be a JSON object."),
    "invalid_agent_id": (400, "agentId must be a string of 1-128 characters from A-Z a-z 0-9 . _ : -"),
    "invalid_source": (400, "source must be a string of 1-64 characters from A-Z a-z 0-9 . _ -"),
    "agent_id_required": (400, "agentId is required."),
    "session_config_not_allowed": (400, "Only agentId and source may be sent; the session config is set on the server."),
    # The response names the repeated header (token_handler); this is the generic wording.
    "duplicate_header": (400, "Send each of Origin, Authorization and X-Firebase-AppCheck at most once."),
    "unauthenticated": (401, "Sign in first: send a valid ID token as Authorization: Bearer <token>."),
    "app_check_failed": (401, "This request did not come from a verified app (X-Firebase-AppCheck)."),
    "app_check_replayed": (401, "This App Check token was already used; send a fresh limited-use token."),
    "origin_not_allowed": (403, "This origin may not request tokens."),
    "anonymous_not_allowed": (403, "Anonymous sign-in is not accepted here: sign in with an account."),
    "agent_not_allowed": (403, "This agent is not served by this endpoint."),
    "not_found": (404, "Not found. POST to /token."),
    "agent_not_found": (404, "Outspeed does not know this agent."),
    "method_not_allowed": (405, "Use POST (or OPTIONS for a CORS preflight)."),
    "payload_too_large": (413, f"The body must be at most {MAX_BODY_BYTES} bytes."),
    "unsupported_media_type": (415, "Content-Type must be application/json."),
    "upstream_rate_limited": (429, "Outspeed is rate limiting token requests; retry later."),
    "quota_exceeded": (429, "The budget of keys for this caller or this endpoint is spent; retry after Retry-After seconds."),
    "not_configured": (500, "The token endpoint has no Outspeed API key configured."),
    "internal_error": (500, "Internal error."),
    "auth_unavailable": (503, "Caller verification is unavailable right now; retry later."),
    "quota_unavailable": (503, "The key budget cannot be checked right now; retry later."),
    "upstream_auth_failed": (502, "Outspeed rejected this endpoint's API key."),
    "upstream_error": (502, "Outspeed failed to create a session."),
    "upstream_bad_response": (502, "Outspeed answered without an ephemeral key."),
    "upstream_unreachable": (502, "Outspeed could not be reached."),
    "upstream_timeout": (504, "Outspeed did not answer in time."),
}


class Rejection(NamedTuple):
    """A contract error: the first failing check's answer."""
    code: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> int:
        return ERRORS[self.code][0]

    @property
    def message(self) -> str:
        return ERRORS[self.code][1]


class UpstreamCall(NamedTuple):
    """What to send to `POST {base}/v1/realtime/sessions`: query parameters (encoded by the
    upstream client, never concatenated) and an optional JSON body."""
    params: tuple[tuple[str, str], ...]
    body: bytes | None
    agent_id: str | None = None


class OriginDecision(NamedTuple):
    allowed: bool
    cors: tuple[tuple[str, str], ...]  # headers for every response to this request


# ---- origin and CORS -------------------------------------------------------------------

def parse_origin(origin: str) -> tuple[str, str] | None:
    """(scheme, hostname) of a serialized origin, both lower-case; None if it is not one."""
    match = _ORIGIN_RE.fullmatch(origin)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).lower()


# Lets cross-origin page code read Retry-After on a 429 or 503 (CORS hides non-safelisted
# headers), and WWW-Authenticate on a 401 when ID tokens are checked.
_EXPOSE = (("Access-Control-Expose-Headers", "Retry-After"),)
_EXPOSE_AUTH = (("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate"),)
_ANY = (("Access-Control-Allow-Origin", "*"),)


def decide_origin(origin: str | None, settings: Settings) -> OriginDecision:
    expose = _EXPOSE if settings.caller_auth.id_token is None else _EXPOSE_AUTH
    allowlist = settings.allowed_hostnames
    if not allowlist:
        # Any origin (and native apps without one); only https-only can still refuse a
        # browser origin that is plainly not https.
        if not settings.https_origins_only:
            return OriginDecision(True, _ANY + expose)
        vary = (("Vary", "Origin"),)  # the scheme of Origin decides: caches must key on it
        if origin is not None:
            parsed = parse_origin(origin)
            if parsed is None or parsed[0] != "https":
                return OriginDecision(False, vary)
        return OriginDecision(True, _ANY + expose + vary)
    vary = (("Vary", "Origin"),)  # the answer depends on Origin: caches must key on it
    if origin is None:
        return OriginDecision(False, vary)
    parsed = parse_origin(origin)
    if parsed is None:
        return OriginDecision(False, vary)
    scheme, hostname = parsed
    if hostname not in allowlist or (settings.https_origins_only and scheme != "https"):
        return OriginDecision(False, vary)
    # Echo exactly what the browser sent (it matched the strict origin grammar above).
    return OriginDecision(True, (("Access-Control-Allow-Origin", origin),) + vary + expose)


# ---- caller credentials -----------------------------------------------------------------

UNAUTHENTICATED = Rejection("unauthenticated", (("WWW-Authenticate", 'Bearer realm="outspeed-token"'),))
APP_CHECK_FAILED = Rejection("app_check_failed")
APP_CHECK_REPLAYED = Rejection("app_check_replayed")
ANONYMOUS_NOT_ALLOWED = Rejection("anonymous_not_allowed")


def preflight_headers(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The preflight's answer headers: the request headers page code may send grow with the
    caller checks that are on (the preflight itself never needs credentials)."""
    auth = settings.caller_auth
    if auth.id_token is None and auth.app_check is None:
        return PREFLIGHT_HEADERS
    return _preflight_with_credentials(auth)


@functools.lru_cache(maxsize=8)
def _preflight_with_credentials(auth: CallerAuth) -> tuple[tuple[str, str], ...]:
    allowed = "Content-Type"
    if auth.id_token is not None:
        allowed += ", Authorization"
    if auth.app_check is not None:
        allowed += ", X-Firebase-AppCheck"
    return tuple((name, allowed if name == "Access-Control-Allow-Headers" else value)
                 for name, value in PREFLIGHT_HEADERS)


def auth_unavailable(retry_after: int) -> Rejection:
    return Rejection("auth_unavailable", (("Retry-After", str(max(1, int(retry_after)))),))


# ---- request shape ---------------------------------------------------------------------

def is_json_content_type(content_type: str | None) -> bool:
    """application/json, parameters (charset) allowed, case-insensitive."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def too_large(content_length: int | None) -> bool:
    return content_length is not None and content_length > MAX_BODY_BYTES


def parse_json_object(raw: bytes) -> dict[str, Any] | Rejection:
    """The body as a dict, or invalid_json (not UTF-8 JSON, NaN/Infinity, too deep, not an object)."""
    try:
        body = token_json.loads(raw)
    except ValueError:
        return Rejection("invalid_json")
    if not isinstance(body, dict):
        return Rejection("invalid_json")
    return body


def plan(body: dict[str, Any], settings: Settings) -> UpstreamCall | Rejection:
    """Field formats (400), then policy (403 / 400): the upstream call this body becomes."""
    agent_id = body.get("agentId")
    if "agentId" in body and not (isinstance(agent_id, str) and AGENT_ID_RE.fullmatch(agent_id)):
        return Rejection("invalid_agent_id")
    source = body.get("source")
    if "source" in body and not (isinstance(source, str) and SOURCE_RE.fullmatch(source)):
        return Rejection("invalid_source")
    extra = {key: value for key, value in body.items() if key not in _RESERVED_FIELDS}
    client_config_allowed = settings.allow_client_session_config
    if extra and not client_config_allowed:
        return Rejection("session_config_not_allowed")
    source_param = (("source", source),) if source is not None else ()

    if agent_id is not None:
        # An empty allowlist means any agent only where ALLOW_ANY_AGENT says so (dev); in
        # prod it means no agent flow at all: only the server's SESSION_CONFIG is served.
        agents_restricted = bool(settings.allowed_agent_ids) or not settings.allow_any_agent
        if agents_restricted and agent_id not in settings.allowed_agent_ids:
            return Rejection("agent_not_allowed")
        # The agent's dashboard config applies; client fields (allowed here) are ignored.
        return UpstreamCall((("agent_id", agent_id),) + source_param, None, agent_id)

    if settings.session_config is not None:
        config = {**settings.session_config, **extra}  # client fields only where allowed (checked above)
    elif extra:  # client-config flow: extra is only non-empty here when allowed
        config = extra
    else:
        return Rejection("agent_id_required")
    try:
        return UpstreamCall(source_param, token_json.dumps(config))
    except ValueError:  # a client field JSON can carry but not send (1e999, a lone \ud800)
        return Rejection("invalid_json")
