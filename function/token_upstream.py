"""The one upstream call: `POST {base}/v1/realtime/sessions` with the API key, through one
module-level pooled keep-alive session, every outcome mapped to the contract's error table.
"""
from __future__ import annotations

import re
import time
from http.cookiejar import DefaultCookiePolicy
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

import token_json
from token_policy import Rejection, UpstreamCall
from token_settings import SETTINGS, Settings

SESSIONS_PATH = "/v1/realtime/sessions"
# Just over a multiple of 3 s (TCP's SYN retransmit), as the requests docs advise: a connect
# that has not completed by then is not going to.
CONNECT_TIMEOUT_SECONDS = 3.05
# Retry-After is a delay in seconds or an HTTP-date; anything else is not passed on.
# A session is a few hundred bytes; an answer this large is not one (and is not read whole).
MAX_ANSWER_BYTES = 1 << 20
_CHUNK_BYTES = 16 * 1024
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
        data = token_json.loads(body)  # strict: what a browser's JSON.parse accepts
    except ValueError:
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


def _read_answer(response: requests.Response, deadline: float) -> bytes | None:
    """The body, or None if it did not all arrive by the deadline (a trickling upstream must
    not hold a thread past UPSTREAM_TIMEOUT_SECONDS). An answer that cannot be decoded or is
    too large to be a session reads as empty: classified by its status alone."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(_CHUNK_BYTES):
            size += len(chunk)
            if time.monotonic() > deadline:
                return None
            if size > MAX_ANSWER_BYTES:
                return b""
            chunks.append(chunk)
    except requests.exceptions.ContentDecodingError:  # e.g. "gzip" that is not
        return b""
    return b"".join(chunks)


def mint(call: UpstreamCall, settings: Settings, session: requests.Session = SESSION) -> Minted | Failed:
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    deadline = time.monotonic() + settings.upstream_timeout
    try:
        with session.post(sessions_url(settings, call), data=call.body, headers=headers,
                          timeout=(CONNECT_TIMEOUT_SECONDS, settings.upstream_timeout),
                          allow_redirects=False, stream=True) as response:
            body = _read_answer(response, deadline)
    except requests.Timeout:  # connect or read: no answer in time
        return Failed(Rejection("upstream_timeout"), None)
    except requests.ConnectionError as exc:  # refused, DNS, reset, dropped mid-answer
        # requests reports a read timeout while reading the body as a ConnectionError.
        timed_out = bool(exc.args) and isinstance(exc.args[0], ReadTimeoutError)
        return Failed(Rejection("upstream_timeout" if timed_out else "upstream_unreachable"), None)
    except requests.RequestException:  # broken chunking, a malformed answer: no usable answer
        return Failed(Rejection("upstream_unreachable"), None)
    if body is None:
        return Failed(Rejection("upstream_timeout"), response.status_code)
    return classify(response.status_code, response.headers, body)
