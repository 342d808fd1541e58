"""The one upstream call: `POST {base}/v1/realtime/sessions` with the API key, through one
module-level pooled keep-alive session, every outcome mapped to the contract's error table.
"""
from __future__ import annotations

import json
import re
from http.cookiejar import DefaultCookiePolicy
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from token_policy import Rejection, UpstreamCall
from token_settings import SETTINGS, Settings

SESSIONS_PATH = "/v1/realtime/sessions"
# Just over a multiple of 3 s (TCP's SYN retransmit), as the requests docs advise: a connect
# that has not completed by then is not going to.
CONNECT_TIMEOUT_SECONDS = 3.05
# Retry-After is a delay in seconds or an HTTP-date; anything else is not passed on.
_RETRY_AFTER_RE = re.compile(r"[0-9]{1,10}|[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")


def new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # One pool per host, sized to the worker's threads so every concurrent request can keep
    # its own warm connection. A refused connect is retried once (the request was never
    # sent); nothing that may have reached Outspeed is retried, and redirects are not followed.
    retries = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, raise_on_status=False)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxy or netrc surprises from the runtime's environment
    # Shared by every caller: a cookie Outspeed (or a balancer in front of it) set for one
    # request must not ride along on the next caller's.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


SESSION = new_session(SETTINGS.threads)


@dataclass(frozen=True)
class Minted:
    """Success: the upstream JSON, byte for byte."""
    body: bytes
    upstream_status: int


@dataclass(frozen=True)
class Failed:
    rejection: Rejection
    upstream_status: int | None


def sessions_url(settings: Settings, call: UpstreamCall) -> str:
    url = settings.api_base + SESSIONS_PATH
    return url + "?" + urlencode(call.params) if call.params else url


def _has_ephemeral_key(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    secret = data.get("client_secret") if isinstance(data, dict) else None
    value = secret.get("value") if isinstance(secret, dict) else None
    return isinstance(value, str) and bool(value)


def classify(status: int, headers, body: bytes) -> Minted | Failed:
    """Map an upstream answer onto the contract (pure, apart from reading its arguments)."""
    if 200 <= status < 300:
        if _has_ephemeral_key(body):
            return Minted(body, status)
        return Failed(Rejection("upstream_bad_response"), status)
    if status in (401, 403):
        return Failed(Rejection("upstream_auth_failed"), status)
    if status == 404:
        return Failed(Rejection("agent_not_found"), status)
    if status == 429:
        retry_after = (headers.get("Retry-After") or "").strip()
        extra = (("Retry-After", retry_after),) if _RETRY_AFTER_RE.fullmatch(retry_after) else ()
        return Failed(Rejection("upstream_rate_limited", extra), status)
    return Failed(Rejection("upstream_error"), status)


def mint(call: UpstreamCall, settings: Settings, session: requests.Session = SESSION) -> Minted | Failed:
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    try:
        response = session.post(sessions_url(settings, call), data=call.body, headers=headers,
                                timeout=(CONNECT_TIMEOUT_SECONDS, settings.upstream_timeout),
                                allow_redirects=False)
        body = response.content
    except requests.Timeout:  # connect or read: no answer in time
        return Failed(Rejection("upstream_timeout"), None)
    except requests.ConnectionError as exc:  # refused, DNS, reset, dropped mid-answer
        # requests reports a read timeout while reading the body as a ConnectionError.
        timed_out = bool(exc.args) and isinstance(exc.args[0], ReadTimeoutError)
        return Failed(Rejection("upstream_timeout" if timed_out else "upstream_unreachable"), None)
    except requests.exceptions.ChunkedEncodingError:  # dropped in the middle of a chunked answer
        return Failed(Rejection("upstream_unreachable"), None)
    return classify(response.status_code, response.headers, body)
