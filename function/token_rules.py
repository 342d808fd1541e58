"""One rule per configured value, shared by the function and the infra.

The function applies these to its environment at cold start (token_settings); the infra
applies the very same functions to stack config at `pulumi preview` (outspeed_token.settings loads
this file by path: it ships inside function/ and is not a package). So a value preview
accepts is a value the function accepts, by construction (tests/test_rule_agreement.py runs
every case through both sides).

Standard library only, no I/O, nothing read at import. A rule returns the normalised value
or raises `RuleError(problem)`; each side wraps the problem with its own name for the value
(`config outspeed-token:callerAuth.idToken.audience: ...` / `AUTH_ID_TOKEN_AUDIENCE ...`).
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable
from urllib.parse import urlsplit


class RuleError(ValueError):
    """A value breaks its rule; the message says what is wrong and what is expected."""


def show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


# Same formats as the request body (DESIGN.md, "POST body"); an allowlisted agent id that
# no request could ever carry is a typo worth failing on.
AGENT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# An exact DNS hostname or IPv4 literal as the browser puts it in Origin: no scheme, port,
# path or wildcard (DESIGN.md: a `*` is a config error). Compared lower-cased.
HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
# Only these hosts may serve keys (or stand in for Outspeed) over plain http: local runs and
# tests, never the network. A deployed function cannot reach them, so the infra refuses http.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
PROJECT_NUMBER_RE = re.compile(r"[0-9]{1,20}")
# Firebase app ids look like 1:123456789012:web:0a1b2c3d4e5f; kept lenient beyond the alphabet.
APP_ID_RE = re.compile(r"[A-Za-z0-9:._-]{1,128}")
# The project number inside a Firebase app id: <version>:<projectNumber>:<platform>:<hash>.
APP_ID_PROJECT_RE = re.compile(r"[0-9]+:([0-9]+):[a-z]+:.+")
# `aud` goes into the token verbatim: visible ASCII, bounded.
AUDIENCE_RE = re.compile(r"[\x21-\x7e]{1,512}")
# RFC 3986's characters (unreserved, reserved, %): no space, no non-ASCII, no control.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
MAX_THREADS = 1000  # Cloud Run's per-instance concurrency ceiling

# Firebase Authentication's ID tokens: iss = https://securetoken.google.com/<project-id>,
# aud = <project-id> (Firebase, "Verify ID tokens using a third-party JWT library").
FIREBASE_AUTH_HOST = "securetoken.google.com"
FIREBASE_AUTH_ISSUER = "https://securetoken.google.com/{audience}"
# App Check tokens: iss = https://firebaseappcheck.googleapis.com/<project-number>.
APP_CHECK_HOST = "firebaseappcheck.googleapis.com"


def url(value: str, *, query_ok: bool = True, local_http: bool = True) -> str:
    """An https URL where keys, their issuer or Outspeed live: a host (a DNS name, an IPv4
    literal or [::1]), a port in 1-65535 if any, no userinfo or fragment, RFC 3986 characters
    only. Plain http only for a loopback host, and only where `local_http` (the function in
    local runs and tests; never a deployed stack)."""
    if not isinstance(value, str) or not _URL_CHARS.fullmatch(value):
        raise RuleError("must be an https URL (RFC 3986 characters only: no spaces or non-ASCII), "
                        f"got {show(value)}")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port outside 0-65535 or not a number
    except ValueError:
        raise RuleError(f"must be an https URL with a valid host and port (1-65535), got {show(value)}") from None
    host = parts.hostname or ""  # lower-cased by urlsplit
    if port == 0 or not (HOSTNAME_RE.fullmatch(host) or host in LOOPBACK_HOSTS):
        raise RuleError(f"must be an https URL with a valid host and port (1-65535), got {show(value)}")
    if parts.username is not None or parts.password is not None or parts.fragment or "#" in value:
        raise RuleError(f"must be an https URL without credentials or fragment, got {show(value)}")
    if not query_ok and (parts.query or "?" in value):
        raise RuleError(f"must be an https URL without query, got {show(value)}")
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        if not local_http:
            raise RuleError(f"must be https, got {show(value)} (a deployed function cannot reach a local http "
                            "server; http on loopback is only for local runs)")
    elif parts.scheme != "https":
        raise RuleError(f"must be https (http only for localhost, 127.0.0.1 or [::1]), got {show(value)}")
    return value


def is_url(value: Any, *, query_ok: bool = True) -> bool:
    try:
        url(value, query_ok=query_ok)
    except RuleError:
        return False
    return True


def issuer(value: str, *, local_http: bool = True) -> str:
    """An ID-token issuer: compared with `iss` exactly, so taken as written. Never App Check's
    own issuer: every visitor's App Check token would then pass as an ID token."""
    url(value, query_ok=False, local_http=local_http)
    if urlsplit(value).hostname == APP_CHECK_HOST:
        raise RuleError(f"is App Check's issuer ({show(value)}): every visitor's App Check token would pass as a "
                        "signed-in user's ID token. Use your sign-in provider's issuer, e.g. "
                        "https://securetoken.google.com/<project-id>, and callerAuth.appCheck for App Check")
    return value


def api_base(value: str, *, local_http: bool = True) -> str:
    """Outspeed's base URL, without query and without a trailing slash."""
    return url(value, query_ok=False, local_http=local_http).rstrip("/")


def audience(value: str) -> str:
    if not isinstance(value, str) or not AUDIENCE_RE.fullmatch(value.strip()):
        raise RuleError(f"must be 1-512 visible ASCII characters (no spaces), got {show(value)}")
    return value.strip()


def id_token(issuer_value: str, audience_value: str) -> None:
    """The issuer and audience together: a Firebase Authentication issuer only ever signs
    tokens with iss=https://securetoken.google.com/<project-id> and aud=<project-id>."""
    parts = urlsplit(issuer_value)
    if (parts.hostname == FIREBASE_AUTH_HOST
            and issuer_value != FIREBASE_AUTH_ISSUER.format(audience=audience_value)):
        raise RuleError(f"issuer {show(issuer_value)} and audience {show(audience_value)} can never both match a "
                        "Firebase ID token (iss is exactly https://securetoken.google.com/<project-id>, no "
                        "trailing slash, and aud is that same <project-id>); set issuer "
                        f"{FIREBASE_AUTH_ISSUER.format(audience=audience_value)!r} or fix the audience")


def issuer_warnings(issuer_value: str) -> list[str]:
    """Issuers that may be right but usually are a typo: `iss` is compared exactly."""
    found = []
    host = issuer_value.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if host != host.lower():
        found.append("has upper-case letters in its host; `iss` is compared exactly, and issuers write their "
                     "host in lower case")
    if issuer_value.endswith("/"):
        found.append("ends with a slash; `iss` is compared exactly (Firebase and Google write none, Auth0 "
                     "writes one): copy it from your issuer's openid-configuration `issuer` field")
    return found


def project_number(value: str) -> str:
    if not isinstance(value, str) or not PROJECT_NUMBER_RE.fullmatch(value.strip()):
        raise RuleError(f"must be the Firebase project number (digits, like 123456789012), got {show(value)}")
    return value.strip()


def app_id(value: str) -> str:
    if not isinstance(value, str) or not APP_ID_RE.fullmatch(value.strip()):
        raise RuleError(f"entry {show(value)} is not a Firebase app id (like 1:123456789012:web:0a1b2c3d4e5f)")
    return value.strip()


def app_ids(number: str, values: Iterable[str]) -> list[str]:
    """App ids of the project `number`: one of another project can never carry its tokens."""
    ids = [app_id(v) for v in values]
    for one in ids:
        match = APP_ID_PROJECT_RE.fullmatch(one)
        if match and match.group(1) != number:
            raise RuleError(f"entry {show(one)} belongs to Firebase project number {match.group(1)}, not "
                            f"{number}: its App Check tokens carry another project. List the apps of project "
                            f"{number} (or fix the project number)")
    return ids


def agent_id(value: str) -> str:
    if not isinstance(value, str) or not AGENT_ID_RE.fullmatch(value.strip()):
        raise RuleError(f"entry {show(value)} is not an agent id (1-128 of A-Z a-z 0-9 . _ : -)")
    return value.strip()


def hostname(value: str) -> str:
    host = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(host, str) or not HOSTNAME_RE.fullmatch(host):
        raise RuleError(f"entry {show(value)} is not an exact hostname "
                        "(like app.example.com: no scheme, port, path or wildcard)")
    return host


def threads(value: int) -> int:
    if not 1 <= value <= MAX_THREADS:
        raise RuleError(f"must be a whole number from 1 to {MAX_THREADS}, got {value}")
    return value


def session_config(value: Any) -> str:
    """The server-side SessionConfig as canonical JSON text (ASCII, sorted keys): what every
    programmatic request sends, so it must be strict JSON in UTF-8."""
    if not isinstance(value, dict):
        raise RuleError('must be a JSON object (like {"model": "outspeed-v1"})')
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN/Infinity, a lone surrogate, a value JSON has no form for
        raise RuleError("holds a value that cannot be sent as JSON (NaN or Infinity, an unpaired \\u surrogate, "
                        "or a non-JSON type)") from None
