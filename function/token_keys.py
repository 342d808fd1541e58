"""The signing keys of caller tokens: fetched on first need, cached, refreshed with care.

One KeySource per kind of token (ID token, App Check). The HTTP client is injected: an async
`fetch(url, *, timeout, max_bytes) -> token_upstream.Fetched(status, headers, body)` that raises on failure
(the endpoint passes token_upstream.fetch, the process-wide pooled pyreqwest client; tests pass fakes).
Nothing happens at import or construction: the cold start makes no network call.

The rules (DESIGN.md, "Caller authentication"):
- keys are fetched when a token first needs one, then cached per the JWKS response's
  `Cache-Control: max-age` (default one hour);
- a `kid` the cache does not know triggers one refetch, at most every 30 s: a flood of made-up
  kids costs the issuer one request per 30 s per instance, not one per request;
- concurrent requests that need a fetch share one in-flight fetch (no thundering herd), which a
  cancelled request does not cancel for the others;
- a failed refetch keeps the keys already held (the issuer's outage is not ours), and the next
  attempt waits FAILURE_BACKOFF_SECONDS; with no keys at all the caller gets KeysUnavailable
  (503 auth_unavailable with Retry-After). A JWKS that cannot be parsed, or that publishes
  private key material (refused whole, with one WARNING line), is such a failed fetch.
- without a configured JWKS URL the keys' address is the `jwks_uri` of the issuer's OIDC
  discovery document (cached the same way, its `issuer` checked against ours).
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

import token_json
import token_log
from token_auth import JwksRefused, parse_jwks
from token_settings import is_key_url

if TYPE_CHECKING:
    import jwt

FETCH_TIMEOUT_SECONDS = 3.0  # per document; a key server slower than this is treated as down
MAX_DOCUMENT_BYTES = 256 * 1024  # JWKS and discovery documents are a few KiB
DEFAULT_MAX_AGE_SECONDS = 3600
# An issuer's max-age is honoured within these bounds: `max-age=0` (or no-store) must not turn
# every request into a key fetch, and a year-long max-age must not pin a revoked key.
MIN_MAX_AGE_SECONDS = 5
MAX_MAX_AGE_SECONDS = 24 * 3600
UNKNOWN_KID_REFETCH_SECONDS = 30
FAILURE_BACKOFF_SECONDS = 5
_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]{1,10})\"?", re.I)
_NO_CACHE_RE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])", re.I)


class Fetch(Protocol):
    def __call__(self, url: str, *, timeout: float, max_bytes: int) -> Awaitable[Any]: ...


class KeysUnavailable(Exception):
    """No key to verify with: none could ever be fetched (503 auth_unavailable)."""

    def __init__(self, retry_after: int, reason: str):
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class _FetchFailed(Exception):
    """One fetch did not yield a usable document; the message is a short reason for the log."""


def max_age_of(headers: Mapping[str, str]) -> float:
    """Seconds a document may be cached, from Cache-Control, bounded."""
    value = None
    for name, field in headers.items():
        if name.lower() == "cache-control":
            value = field
            break
    if value is None:
        return DEFAULT_MAX_AGE_SECONDS
    if _NO_CACHE_RE.search(value):
        return MIN_MAX_AGE_SECONDS
    match = _MAX_AGE_RE.search(value)
    seconds = int(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS
    return min(max(seconds, MIN_MAX_AGE_SECONDS), MAX_MAX_AGE_SECONDS)


class KeySource:
    """The keys of one issuer: `await source.key(kid)` -> the key, None (unknown kid), or
    KeysUnavailable. Lives as long as the process; safe to share between concurrent requests
    of one event loop."""

    def __init__(self, fetch: Fetch, *, jwks_uri: str | None = None, discovery_url: str | None = None,
                 issuer: str | None = None, clock: Callable[[], float] = time.monotonic,
                 timeout: float = FETCH_TIMEOUT_SECONDS):
        if not jwks_uri and not discovery_url:
            raise ValueError("a KeySource needs a JWKS URL or a discovery URL")
        self._fetch = fetch
        self._fixed_jwks_uri = jwks_uri
        self._discovery_url = discovery_url
        self._issuer = issuer
        self._clock = clock
        self._timeout = timeout
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._expires_at = 0.0
        self._discovered_jwks_uri: str | None = None
        self._discovery_expires_at = 0.0
        self._last_kid_refetch: float | None = None
        self._retry_at = 0.0  # no fetch before this (after a failure)
        self._inflight: asyncio.Future | None = None
        self.fetches = 0  # documents requested (for tests and diagnostics)
        self.last_problem: str | None = None  # why the last fetch failed; None after a success

    # -- the one public question ---------------------------------------------------------

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = self._clock()
        if self._keys is not None and now < self._expires_at:  # fresh
            found = self._keys.get(kid)
            if found is not None:
                return found
            if self._inflight is not None:  # a fetch is under way: its keys may have it
                await self._join()
                return self._keys.get(kid)
            if self._last_kid_refetch is not None and now - self._last_kid_refetch < UNKNOWN_KID_REFETCH_SECONDS:
                return None
            if now < self._retry_at:
                return None
            self._last_kid_refetch = now
            await self._refresh()
            return self._keys.get(kid)
        # Nothing cached yet, or the cache expired.
        if self._inflight is not None or now >= self._retry_at:
            await self._refresh()
        if self._keys is None:
            retry = max(1, math.ceil(self._retry_at - self._clock()))
            raise KeysUnavailable(retry, self.last_problem or "no keys")
        return self._keys.get(kid)  # possibly stale: kept because the refetch failed

    # -- fetching ------------------------------------------------------------------------

    async def _refresh(self) -> None:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch_keys())
        await self._join()

    async def _join(self) -> None:
        inflight = self._inflight
        if inflight is not None:
            # shield: a caller that goes away (client disconnect) does not cancel the fetch
            # the other callers are waiting for.
            await asyncio.shield(inflight)

    async def _fetch_keys(self) -> None:
        try:
            jwks_uri = await self._jwks_uri()
            fetched = await self._get(jwks_uri, "jwks")
            document = self._json(fetched, "jwks")
            try:
                keys = parse_jwks(document)
            except JwksRefused as refused:
                problem = f"jwks: {refused}"
                if problem != self.last_problem:  # once per incident, not once per refetch
                    token_log.emit(token_log.event_line(
                        "WARNING", f"JWKS refused: {jwks_uri} {refused}; none of its keys is used",
                        event="jwks_refused"), None)
                raise _FetchFailed(problem) from None
            except Exception as error:  # noqa: BLE001 - whatever a document trips: a failed fetch
                # The type only: an error's words could quote the document.
                raise _FetchFailed(f"jwks: unusable document ({type(error).__name__})") from None
            if not keys:
                raise _FetchFailed("jwks: no usable signing key")
            self._keys = keys
            self._expires_at = self._clock() + max_age_of(fetched.headers)
            self._retry_at = 0.0
            self.last_problem = None
        except _FetchFailed as failure:
            self.last_problem = str(failure)
            self._retry_at = self._clock() + FAILURE_BACKOFF_SECONDS
        finally:
            self._inflight = None

    async def _jwks_uri(self) -> str:
        if self._fixed_jwks_uri:
            return self._fixed_jwks_uri
        if self._discovered_jwks_uri and self._clock() < self._discovery_expires_at:
            return self._discovered_jwks_uri
        try:
            fetched = await self._get(self._discovery_url, "discovery")
            document = self._json(fetched, "discovery")
            if not isinstance(document, dict):
                raise _FetchFailed("discovery: not a JSON object")
            if self._issuer is not None and document.get("issuer") != self._issuer:
                raise _FetchFailed("discovery: its issuer is not the configured AUTH_ID_TOKEN_ISSUER")
            jwks_uri = document.get("jwks_uri")
            if not is_key_url(jwks_uri):
                raise _FetchFailed("discovery: jwks_uri missing or not an https URL")
        except _FetchFailed:
            if self._discovered_jwks_uri:  # keep the address we had
                return self._discovered_jwks_uri
            raise
        self._discovered_jwks_uri = jwks_uri
        self._discovery_expires_at = self._clock() + max_age_of(fetched.headers)
        return jwks_uri

    async def _get(self, url: str, what: str):
        self.fetches += 1
        try:
            fetched = await self._fetch(url, timeout=self._timeout, max_bytes=MAX_DOCUMENT_BYTES)
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            raise _FetchFailed(f"{what}: timed out") from None
        except Exception as error:  # noqa: BLE001 - any failure to fetch is "keys not fetched"
            # The fetch's own words (token_upstream.FetchError names the URL and what went
            # wrong, never a body); a URL is configuration, and no caller input reaches here.
            detail = str(error)[:160]
            raise _FetchFailed(f"{what}: {type(error).__name__}" + (f": {detail}" if detail else "")) from None
        if fetched.status != 200:
            raise _FetchFailed(f"{what}: HTTP {fetched.status}")
        return fetched

    @staticmethod
    def _json(fetched, what: str) -> Any:
        try:
            return token_json.loads(fetched.body)
        except ValueError:
            raise _FetchFailed(f"{what}: not JSON") from None
