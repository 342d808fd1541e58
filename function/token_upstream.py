"""The one upstream call: `POST {base}/v1/realtime/sessions` with the API key, through one
process-wide pooled keep-alive HTTP client (pyreqwest: Rust reqwest + hyper + rustls), every
outcome mapped to the contract's error table. `fetch` offers the same client (and the same
whole-answer deadline) to other calls (caller authentication's JWKS / OIDC discovery, App
Check's token consumption, the metadata server).

Every request is built by one function, `_send`: the whole-answer deadline on the request
itself (pyreqwest does not abort a request whose task is cancelled: its own deadline is what
ends it), no redirects followed, no proxy from the environment, no decompression (no
Accept-Encoding sent: a body is read as it comes, never inflated), and a streamed read capped
at max_bytes. tests/function/test_upstream_client.py fails if any of these is lost.

The client module is imported lazily, on first use, not when main.py is imported:
functions-framework imports main.py in the gunicorn master, which never calls Outspeed. The
worker builds the client at boot (main.py's lifespan), before it accepts a request; where no
lifespan runs (unit tests) the first call does. Its import costs 5-25 ms and building the
client, which loads the system's CA bundle (trust_store_env), 2-10 ms (aiohttp's import cost
0.13-0.22 s, most of it two TLS contexts built at import).
"""
from __future__ import annotations

import asyncio
import functools
import os
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Mapping, NamedTuple
from urllib.parse import urlencode

import token_json
from token_policy import Rejection, UpstreamCall
from token_settings import SETTINGS, Settings

if TYPE_CHECKING:
    from pyreqwest.client import Client
    from pyreqwest.response import Response

SESSIONS_PATH = "/v1/realtime/sessions"
# Just over a multiple of 3 s (TCP's SYN retransmit): a connect that has not completed by
# then is not going to.
CONNECT_TIMEOUT_SECONDS = 3.05
# A session is a few hundred bytes; an answer this large is not one (and is not read whole).
MAX_ANSWER_BYTES = 1 << 20
# How long an idle pooled connection is kept for the next call (Outspeed's side may close it
# sooner; the client then opens a new one).
_KEEPALIVE_SECONDS = 30.0
# Retry-After is a delay in seconds or an HTTP-date; anything else is not passed on.
_RETRY_AFTER_RE = re.compile(r"[0-9]{1,10}|[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")

_session: Client | None = None
_session_loop: asyncio.AbstractEventLoop | None = None
_errors = None  # pyreqwest.exceptions, once imported
# The client's I/O runs on one thread of tokio's multi-threaded scheduler rather than on
# pyreqwest's default current-thread runtime: at c=64, 1.4x the requests/s and 13 ms less p50
# for the same CPU per request, because the default runtime's thread stalls every connection
# while it waits for the GIL to hand an answer back (docs/performance.md, "Client runtime").
# One worker: a second one added CPU per request and no throughput on 2 cores.
RUNTIME_WORKER_THREADS = 1


def _lib():
    """pyreqwest's builder and exceptions, imported on first use (see the module docstring)."""
    global _errors
    from pyreqwest.client import ClientBuilder
    if _errors is None:
        import pyreqwest.exceptions
        import pyreqwest.runtime
        # Set before the runtime starts (pyreqwest refuses a different value once it runs).
        pyreqwest.runtime.runtime_worker_threads(RUNTIME_WORKER_THREADS)
        _errors = pyreqwest.exceptions
    return ClientBuilder, _errors


# The system's CA bundle on Debian and Ubuntu (Google's Python runtime images are Ubuntu):
# update-ca-certificates writes every trusted certificate both into this one file and into
# /etc/ssl/certs as a file per certificate, twice over (name and hash links).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def trust_store_env(environ: Mapping[str, str], exists=os.path.exists) -> dict[str, str]:
    """What to add to the environment before the client is built: the system bundle as the
    one trust store (SSL_CERT_FILE, with SSL_CERT_DIR set empty: no directory), unless either
    variable is set already (an operator's choice stands) or there is no bundle. Building the
    client loads the trust store; left to itself it also parses every file of /etc/ssl/certs,
    about 290 and 10 ms of the worker's boot, for the certificates the bundle already holds
    (2 ms). rustls (rustls-native-certs: "SSL_CERT_DIR ... empty entries ignored") and
    OpenSSL, hence Python's ssl module, read both variables the same way."""
    if "SSL_CERT_FILE" in environ or "SSL_CERT_DIR" in environ or not exists(SYSTEM_CA_BUNDLE):
        return {}
    return {"SSL_CERT_FILE": SYSTEM_CA_BUNDLE, "SSL_CERT_DIR": ""}


def new_session(pool_size: int) -> Client:
    """The pooled client every request goes through (see `_send` for the per-request half)."""
    builder, _ = _lib()
    # At the worker's boot, before the client's threads exist (setting the environment is not
    # safe once other threads may read it).
    os.environ.update(trust_store_env(os.environ))
    return (builder()
            # The multi-threaded runtime (RUNTIME_WORKER_THREADS threads), see above.
            .runtime_multithreaded(True)
            # One pool, sized to the instance's request concurrency (THREADS): at most that many
            # requests in flight, each able to keep its own warm connection; beyond that a call
            # waits for a free slot (inside its deadline).
            .max_connections(pool_size)
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(timedelta(seconds=_KEEPALIVE_SECONDS))
            .connect_timeout(timedelta(seconds=CONNECT_TIMEOUT_SECONDS))
            # Every answer is the answer: a redirect is a status to classify, never followed.
            .follow_redirects(False)
            # No HTTP_PROXY / HTTPS_PROXY / ALL_PROXY from the runtime's environment.
            .no_proxy()
            # No Accept-Encoding sent and nothing inflated: the byte cap counts what arrives,
            # so a gzip bomb stays a small body, and a body claiming an encoding it does not
            # have is classified by its status rather than failing the read.
            .gzip(False).brotli(False).zstd(False).deflate(False)
            # Shared by every caller: a cookie Outspeed (or a balancer in front of it) set for
            # one request must never ride along on the next caller's (pyreqwest keeps none
            # unless asked; said here so that it stays so).
            .default_cookie_store(False)
            .build())


def session() -> Client:
    """The process-wide client, created on first use in the running loop (a new loop, as in
    unit tests that each run their own, gets its own client)."""
    global _session, _session_loop
    loop = asyncio.get_running_loop()
    if _session is None or _session_loop is not loop:
        _session = new_session(SETTINGS.threads)
        _session_loop = loop
    return _session


# After close(), pyreqwest's runtime thread still drops the closed connections for a few ms; an
# interpreter that finalizes meanwhile can abort ("Fatal Python error: PyGILState_Release",
# exit 134: seen in about 1 exit in 4 on 3.11 and 3.12 with 0.15.1). close() waits this long
# (the worker's shutdown only) so that the worker exits cleanly.
_CLOSE_SETTLE_SECONDS = 0.25


async def close() -> None:
    """Close the process's client (and its pooled connections), if one is open."""
    global _session, _session_loop
    client, _session, _session_loop = _session, None, None
    if client is not None:
        await client.close()
        await asyncio.sleep(_CLOSE_SETTLE_SECONDS)


@functools.lru_cache(maxsize=16)
def _deadline(seconds: float) -> timedelta:
    """A request's deadline as pyreqwest takes it; a handful of values, made once each."""
    return timedelta(seconds=seconds)


class _TooLarge(Exception):
    pass


class _Encoded(Exception):
    """The answer claims a Content-Encoding, which was not asked for (no Accept-Encoding is
    sent) and is not undone: its bytes are not the document."""


def _send(method: str, url: str, *, timeout: float, headers: Mapping[str, str], body: bytes | None):
    """The one place a request is built: on the pooled client (redirects off, no proxy, no
    decompression), with the whole-answer deadline (connect, headers and body) on the request
    itself, and its body streamed (read with `_read_capped`). Use as `async with`."""
    builder = session().request(method, url).headers(headers).timeout(_deadline(timeout))
    if body is not None:
        builder = builder.body_bytes(body)
    return builder.build_streamed()


async def _read_capped(response: Response, max_bytes: int) -> bytes:
    """The body, never holding more than max_bytes + one chunk; over the cap raises _TooLarge,
    an encoded body (gzip or any other coding) raises _Encoded before a byte is read."""
    if (response.headers.get("Content-Encoding") or "identity").strip().lower() != "identity":
        raise _Encoded()
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise _TooLarge()
    reader = response.body_reader
    chunks, size = [], 0
    while (chunk := await reader.read_chunk()) is not None:
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge()
        chunks.append(chunk.to_bytes())
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Minted(NamedTuple):
    """Success: the upstream JSON, byte for byte."""
    body: bytes
    upstream_status: int


class Failed(NamedTuple):
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


async def mint(call: UpstreamCall, settings: Settings) -> Minted | Failed:
    errors = _errors or _lib()[1]
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    status: int | None = None
    try:
        # The whole answer (connect, headers and body) within UPSTREAM_TIMEOUT_SECONDS: a slow
        # or trickling upstream gets a 504, never holds the request longer.
        async with _send("POST", sessions_url(settings, call), timeout=settings.upstream_timeout,
                         headers=headers, body=call.body) as response:
            status = response.status
            try:
                body = await _read_capped(response, MAX_ANSWER_BYTES)
            except _TooLarge:
                body = b""  # too large to be a session: classified by its status alone
            except _Encoded:
                body = b""  # e.g. "gzip" (unasked for, real or not): classified by its status alone
            return classify(status, response.headers, body)
    except TimeoutError:  # connect, headers or body: no whole answer in time
        return Failed(Rejection("upstream_timeout"), status)
    except errors.PyreqwestError:  # refused, DNS, TLS, reset, dropped mid-answer, broken chunking
        return Failed(Rejection("upstream_unreachable"), None)


# --- other calls on the same session (key fetches, Google APIs, the metadata server) ---

class Fetched(NamedTuple):
    status: int
    headers: Mapping[str, str]  # case-insensitive mapping
    body: bytes


class FetchError(Exception):
    """Unreachable, timed out, or a body over max_bytes. The message names the URL and what
    went wrong, never a body."""


async def fetch(url: str, *, timeout: float, max_bytes: int = 1 << 20, method: str = "GET",
                headers: Mapping[str, str] | None = None, body: bytes | None = None) -> Fetched:
    """`method` `url` on the pooled client (GET by default: caller authentication's JWKS and
    discovery; POST with a body and extra headers: Google APIs such as App Check's token
    consumption, and the metadata server); the whole answer (headers and body) within
    `timeout` seconds, at most `max_bytes` of body. Any status is returned as is (the caller
    decides). Redirects are never followed."""
    errors = _errors or _lib()[1]
    request_headers = {"Accept": "application/json"}
    if headers:
        request_headers.update(headers)
    try:
        async with _send(method, url, timeout=timeout, headers=request_headers, body=body) as response:
            data = await _read_capped(response, max_bytes)
            # A copy: pyreqwest's HeaderMap, a case-insensitive mapping (first value per name).
            return Fetched(response.status, type(response.headers)(response.headers), data)
    except TimeoutError:
        raise FetchError(f"{method} {url}: no whole answer within {timeout} s") from None
    except _TooLarge:
        raise FetchError(f"{method} {url}: body over {max_bytes} bytes") from None
    except _Encoded:
        raise FetchError(f"{method} {url}: a Content-Encoding that was not asked for") from None
    except errors.PyreqwestError as exc:
        raise FetchError(f"{method} {url}: {type(exc).__name__}") from None
