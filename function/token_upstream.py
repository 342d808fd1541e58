"""The one upstream call: `POST {base}/v1/realtime/sessions` with the API key, through one
process-wide pooled keep-alive aiohttp session, every outcome mapped to the contract's error
table. `fetch` offers the same session (and the same whole-answer deadline) to other GETs
(caller authentication's JWKS / OIDC discovery).

The session is created lazily, on first use, inside the running event loop (aiohttp binds a
session to its loop). aiohttp itself is imported then too, not when main.py is imported:
functions-framework imports main.py in the gunicorn master, which never calls Outspeed, and
`import aiohttp` was the largest part of that import (0.15-0.22 s; about 40 % of it building
two TLS contexts). The worker pays it once, at boot: main.py's lifespan opens the session
before the worker accepts a request (where no lifespan runs, as in unit tests, the first call
does). The cold-start figure (process start to first 200) includes it either way.
"""
from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from urllib.parse import urlencode

import token_json
from token_policy import Rejection, UpstreamCall
from token_settings import SETTINGS, Settings

if TYPE_CHECKING:
    import aiohttp

SESSIONS_PATH = "/v1/realtime/sessions"
# Just over a multiple of 3 s (TCP's SYN retransmit): a connect that has not completed by
# then is not going to.
CONNECT_TIMEOUT_SECONDS = 3.05
# A session is a few hundred bytes; an answer this large is not one (and is not read whole).
MAX_ANSWER_BYTES = 1 << 20
_CHUNK_BYTES = 16 * 1024
# How long an idle pooled connection is kept for the next call (Outspeed's side may close it
# sooner; aiohttp then opens a new one).
_KEEPALIVE_SECONDS = 30.0
# Retry-After is a delay in seconds or an HTTP-date; anything else is not passed on.
_RETRY_AFTER_RE = re.compile(r"[0-9]{1,10}|[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")

_session: aiohttp.ClientSession | None = None
_session_loop: asyncio.AbstractEventLoop | None = None
_aiohttp = None


def _lib():
    """The aiohttp module, imported on first use (see the module docstring)."""
    global _aiohttp
    if _aiohttp is None:
        import aiohttp
        _aiohttp = aiohttp
    return _aiohttp


def new_session(pool_size: int) -> aiohttp.ClientSession:
    """Must be called inside the running loop the session will serve."""
    aiohttp = _lib()
    connector = aiohttp.TCPConnector(
        # One pool, sized to the instance's request concurrency (THREADS), so every concurrent
        # request can keep its own warm connection; beyond that a call waits for a free one
        # (inside its deadline).
        limit=pool_size, limit_per_host=pool_size, keepalive_timeout=_KEEPALIVE_SECONDS,
        ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        # Shared by every caller: a cookie Outspeed (or a balancer in front of it) set for one
        # request must never ride along on the next caller's.
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # no proxy or netrc surprises from the runtime's environment
        # The whole-answer deadline is enforced per call (asyncio.timeout); only the TCP connect
        # gets its own, shorter bound here.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS),
        raise_for_status=False,
    )


@functools.lru_cache(maxsize=8)
def _deadline(seconds: float) -> aiohttp.ClientTimeout:
    # ceil_threshold: aiohttp would otherwise round deadlines of 5 s and more up to whole seconds.
    return _lib().ClientTimeout(total=seconds, sock_connect=CONNECT_TIMEOUT_SECONDS, ceil_threshold=3600)


def session() -> aiohttp.ClientSession:
    """The process-wide session, created on first use in the running loop (a new loop, as in
    unit tests that each run their own, gets its own session)."""
    global _session, _session_loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _session_loop is not loop:
        _session = new_session(SETTINGS.threads)
        _session_loop = loop
    return _session


async def close() -> None:
    """Close the process's session (and its pooled connections), if one is open."""
    if _session is not None and not _session.closed:
        await _session.close()


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


class _TooLarge(Exception):
    pass


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, never holding more than max_bytes + one chunk; over the cap raises _TooLarge."""
    length = response.content_length
    if length is not None and not response.headers.get("Content-Encoding"):
        if length > max_bytes:
            raise _TooLarge()
        return await response.read()  # the common case: a small answer of announced length
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _is_decoding_error(exc: aiohttp.ClientPayloadError) -> bool:
    """A body that claims an encoding it does not have (say "gzip" that is not), as opposed to
    a body cut short or broken chunking."""
    text = repr(exc) + repr(exc.__cause__) + repr(exc.__context__)
    return "ContentEncodingError" in text or "Can not decode content-encoding" in text


async def mint(call: UpstreamCall, settings: Settings) -> Minted | Failed:
    aiohttp = _lib()
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    status: int | None = None
    try:
        # The whole answer (connect, headers and body) within UPSTREAM_TIMEOUT_SECONDS: a slow
        # or trickling upstream gets a 504, never holds the request longer. aiohttp's `total`
        # covers exactly that (and costs less per call than wrapping in asyncio.timeout).
        async with session().post(sessions_url(settings, call), data=call.body, headers=headers,
                                  allow_redirects=False, timeout=_deadline(settings.upstream_timeout)) as response:
            status = response.status
            try:
                body = await _read_capped(response, MAX_ANSWER_BYTES)
            except _TooLarge:
                body = b""  # too large to be a session: classified by its status alone
            except aiohttp.ClientPayloadError as exc:
                if not _is_decoding_error(exc):
                    raise
                body = b""  # e.g. "gzip" that is not: classified by its status alone
            return classify(status, response.headers, body)
    except (TimeoutError, asyncio.TimeoutError):  # connect, headers or body: no whole answer in time
        return Failed(Rejection("upstream_timeout"), status)
    except aiohttp.ClientError:  # refused, DNS, reset, dropped mid-answer, broken chunking
        return Failed(Rejection("upstream_unreachable"), None)


# --- other calls on the same session (key fetches, Google APIs, the metadata server) ---

@dataclass(frozen=True)
class Fetched:
    status: int
    headers: Mapping[str, str]  # case-insensitive mapping
    body: bytes


class FetchError(Exception):
    """Unreachable, timed out, or a body over max_bytes. The message names the URL and what
    went wrong, never a body."""


async def fetch(url: str, *, timeout: float, max_bytes: int = 1 << 20, method: str = "GET",
                headers: Mapping[str, str] | None = None, body: bytes | None = None) -> Fetched:
    """`method` `url` on the pooled session (GET by default: caller authentication's JWKS and
    discovery; POST with a body and extra headers: Google APIs such as App Check's token
    consumption, and the metadata server); the whole answer (headers and body) within
    `timeout` seconds, at most `max_bytes` of body. Any status is returned as is (the caller
    decides). Redirects are never followed."""
    aiohttp = _lib()
    from multidict import CIMultiDictProxy  # aiohttp's own dependency, loaded with it
    request_headers = {"Accept": "application/json"}
    if headers:
        request_headers.update(headers)
    try:
        async with session().request(method, url, data=body, allow_redirects=False, timeout=_deadline(timeout),
                                     headers=request_headers) as response:
            data = await _read_capped(response, max_bytes)
            return Fetched(response.status, CIMultiDictProxy(response.headers.copy()), data)
    except (TimeoutError, asyncio.TimeoutError):
        raise FetchError(f"{method} {url}: no whole answer within {timeout} s") from None
    except _TooLarge:
        raise FetchError(f"{method} {url}: body over {max_bytes} bytes") from None
    except aiohttp.ClientError as exc:
        raise FetchError(f"{method} {url}: {type(exc).__name__}") from None
