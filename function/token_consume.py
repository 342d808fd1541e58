"""App Check replay protection (DESIGN.md, "Spend ceiling": `consume: true`): the last check
before a key is spent. A token that passed the local checks is consumed at Firebase
(`POST {api_base}/v1beta/projects/<number>:verifyAppCheckToken`, body {"appCheckToken": ...});
Firebase marks it, and answers `alreadyConsumed: true` to every later call with that token,
from any instance.

The call is authorised by the function's own service account: an OAuth access token from the
metadata server (`GET http://{GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/
default/token`, header `Metadata-Flavor: Google`), cached until shortly before it expires;
concurrent requests that find no valid token share one fetch.

Both calls go through token_upstream.fetch (the process's pooled client). Within
CONSUME_DEADLINE_SECONDS in all (both calls together) there is an answer, or the request gets
503 `auth_unavailable` with Retry-After. `decide` and `access_token_of` are pure: an answer in,
an outcome out. Nothing here ever puts a token (the caller's or the access token) into a
reason or an exception message.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, NamedTuple

import token_json
from token_policy import APP_CHECK_FAILED, APP_CHECK_REPLAYED, Rejection, auth_unavailable
from token_settings import AppCheckCheck
from token_upstream import FetchError

# Metadata server and Firebase together (DESIGN.md): a request waits at most this long.
CONSUME_DEADLINE_SECONDS = 5.0
# What a 503 tells the caller to wait: Google's outages are rarely shorter.
RETRY_AFTER_SECONDS = 5
# An access token is refreshed this long before Google says it expires (google-auth's own
# threshold, 3 min 45 s): no call starts with a token that could expire in flight. A token
# that lives shorter than twice that is kept for half its life.
REFRESH_MARGIN_SECONDS = 225.0
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
MAX_ANSWER_BYTES = 64 * 1024
FETCH_MARGIN_SECONDS = 0.1
# 403s that say the function itself may not call (no tokenVerifier role, API not enabled in
# the project): the server's fault, not the caller's token (google.rpc.ErrorInfo reasons).
# token_upstream.fetch: (url, *, timeout, max_bytes, method, headers, body) -> Fetched.
Fetch = Callable[..., Awaitable[Any]]
_SERVER_SIDE_REASONS = frozenset({"IAM_PERMISSION_DENIED", "SERVICE_DISABLED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                                  "API_KEY_SERVICE_BLOCKED", "CONSUMER_INVALID", "USER_PROJECT_DENIED"})


class Consumed:
    """First use of the token: the request may go on."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "Consumed()"


class Refused(NamedTuple):
    rejection: Rejection
    reason: str  # for the log line, never a token


class AccessToken(NamedTuple):
    value: str
    expires_in: float  # seconds, as the metadata server said


class _Unavailable(Exception):
    """The metadata server or Firebase cannot give an answer; the message is a log reason."""


def verify_url(check: AppCheckCheck) -> str:
    return f"{check.api_base}/v1beta/projects/{check.project_number}:verifyAppCheckToken"


def metadata_url(check: AppCheckCheck) -> str:
    return f"http://{check.metadata_host}{TOKEN_PATH}"


def _unavailable(reason: str) -> Refused:
    return Refused(auth_unavailable(RETRY_AFTER_SECONDS), f"app_check: consume unavailable ({reason})")


def _json(body: bytes) -> Any:
    try:
        return token_json.loads(body)
    except ValueError:
        return None


def access_token_of(status: int, body: bytes) -> AccessToken | str:
    """The metadata server's answer -> the access token, or why there is none (pure)."""
    if status != 200:
        return f"metadata: HTTP {status}"
    data = _json(body)
    value = data.get("access_token") if isinstance(data, dict) else None
    expires_in = data.get("expires_in") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        return "metadata: no access_token"
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
        return "metadata: no expires_in"
    return AccessToken(value, float(expires_in))


def _error_reasons(data: Any) -> tuple[str, set[str]]:
    """A Google API error body ({"error": {"message", "status", "details": [ErrorInfo...]}})
    -> its message and its ErrorInfo reasons."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", set()
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    details = error.get("details") if isinstance(error.get("details"), list) else []
    reasons = {d["reason"] for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str)}
    return message, reasons


def decide(status: int, body: bytes) -> Consumed | Refused:
    """Firebase's answer to verifyAppCheckToken -> the outcome (pure).

    200 without `alreadyConsumed` (Firebase leaves the field out on first use) or with it
    false: consumed now. `alreadyConsumed: true`: a replay. 400 (unsupported provider) or 403
    (an invalid token) for the token: app_check_failed. A 403 that says the function itself
    may not call, and anything else: unavailable (the caller's token is not at fault)."""
    if status == 200:
        data = _json(body)
        if not isinstance(data, dict):
            return _unavailable("firebase: HTTP 200 without a JSON object")
        already = data.get("alreadyConsumed", False)
        if already is True:
            return Refused(APP_CHECK_REPLAYED, "app_check: already_consumed")
        if already is False:
            return Consumed()
        return _unavailable("firebase: alreadyConsumed not a boolean")
    if status in (400, 403):
        message, reasons = _error_reasons(_json(body))
        if reasons & _SERVER_SIDE_REASONS or "appCheckTokens.verify" in message:
            # Never the caller's fault: every request would be refused until the grant is fixed.
            return _unavailable(f"firebase: HTTP {status} {sorted(reasons & _SERVER_SIDE_REASONS) or 'permission'}"
                                " - does the runtime account hold roles/firebaseappcheck.tokenVerifier?")
        return Refused(APP_CHECK_FAILED, f"app_check: consume refused (HTTP {status})")
    return _unavailable(f"firebase: HTTP {status}")


class Consumer:
    """One per process: its access-token cache is shared by every request."""

    def __init__(self, check: AppCheckCheck, fetch: Fetch, clock: Callable[[], float] = time.monotonic):
        self.check = check
        self.fetch = fetch
        self.clock = clock
        self.verify_url = verify_url(check)
        self.metadata_url = metadata_url(check)
        self._token: str | None = None
        self._fresh_until = 0.0
        self._pending: asyncio.Task | None = None

    async def consume(self, token: str) -> Consumed | Refused:
        """Consume `token` (already verified locally) at Firebase, within the deadline."""
        deadline = self.clock() + CONSUME_DEADLINE_SECONDS
        try:
            async with asyncio.timeout(CONSUME_DEADLINE_SECONDS):
                access = await self._access_token(deadline)
                answer = await self.fetch(
                    self.verify_url, timeout=self._left(deadline), max_bytes=MAX_ANSWER_BYTES, method="POST",
                    headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
                    body=token_json.dumps({"appCheckToken": token}))
        except _Unavailable as unavailable:
            return _unavailable(str(unavailable))
        except TimeoutError:
            return _unavailable(f"no answer within {CONSUME_DEADLINE_SECONDS:g} s")
        except FetchError as exc:  # its message names the URL and the failure, never a body
            return _unavailable(f"firebase: {exc}")
        if answer.status == 401:
            self._token = None  # a token Google no longer accepts: fetch a new one next time
        return decide(answer.status, answer.body)

    def _left(self, deadline: float) -> float:
        left = deadline - self.clock()
        if left <= 0:
            raise TimeoutError
        return left

    async def _access_token(self, deadline: float) -> str:
        if self._token is not None and self.clock() < self._fresh_until:
            return self._token
        loop = asyncio.get_running_loop()
        if self._pending is None or self._pending.done() or self._pending.get_loop() is not loop:
            # Its own bound ends just inside this request's deadline: the fetch is over (and a
            # request arriving next starts afresh) by the time this one answers.
            self._pending = loop.create_task(self._refresh(max(0.01, self._left(deadline) - FETCH_MARGIN_SECONDS)))
            # Its failure is reported to the waiters; if they all gave up, nobody else asks.
            self._pending.add_done_callback(lambda task: task.cancelled() or task.exception())
        # Shielded: one waiter's deadline must not cancel the fetch the others share.
        return await asyncio.shield(self._pending)

    async def _refresh(self, timeout: float) -> str:
        started = self.clock()
        try:
            answer = await self.fetch(self.metadata_url, timeout=timeout, max_bytes=MAX_ANSWER_BYTES,
                                      headers={"Metadata-Flavor": "Google"})
        except FetchError as exc:  # unreachable, slow, too large
            raise _Unavailable(f"metadata: {exc}") from None
        token = access_token_of(answer.status, answer.body)
        if isinstance(token, str):
            raise _Unavailable(token)
        self._token = token.value
        self._fresh_until = started + token.expires_in - min(REFRESH_MARGIN_SECONDS, token.expires_in / 2)
        return token.value
