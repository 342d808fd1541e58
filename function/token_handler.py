"""One request, start to finish: the contract's checks in order (path, origin, preflight,
method, caller credentials, content type, size, JSON, fields, policy, key, App Check
consumption, quota; the first failing one answers, nothing rejected reaches Outspeed), the
upstream call, the response, one log line.
Starlette request/response glue around the pure decisions of token_policy and the caller check
of token_caller (which runs before any of the body is read).

Bodies: at most MAX_BODY_BYTES + 1 bytes are ever read from the request stream, and only
once every check before the size check has passed. Whatever the handler leaves unread is
never buffered: uvicorn stops reading a request body it has 64 KiB of (flow control) and,
once the response is complete, discards the rest as it arrives.

Before every check: a request carrying Origin, Authorization or X-Firebase-AppCheck more than
once is 400 duplicate_header (header_map notes it), as no copy may be trusted over another.
"""
from __future__ import annotations

import functools
import json
import time
import traceback
from typing import NamedTuple

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

import token_auth
import token_log
import token_quota
import token_upstream
from token_caller import Authenticator, Denied
from token_consume import Refused
from token_policy import (ERRORS, MAX_BODY_BYTES, METHODS, PATHS, Rejection, decide_origin, is_json_content_type,
                          parse_json_object, plan, preflight_headers, too_large)
from token_quota import StoreUnavailable
from token_settings import SETTINGS, Quotas, Settings
from token_upstream import Minted

# Every response: never cached anywhere (an ephemeral key is single-use and short-lived, and
# even errors depend on Origin), never sniffed as anything but its declared type.
BASE_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
_ERROR_BODIES = {code: json.dumps({"error": code, "message": message}).encode()
                 for code, (_, message) in ERRORS.items()}
# Logged (never answered: the caller is gone) when the request body stops midway, whether the
# client hung up or the server's parser refused the rest (a malformed chunked body: uvicorn
# answers that 400 itself). nginx's code for "client closed request"; a WARNING, not an ERROR.
_CLIENT_GONE = (499, "client_closed_request")
# Caller authentication for the process: its key caches live as long as the worker, and its
# key fetches go through the pooled session (token_upstream.fetch). Built here, at import,
# without any I/O: keys are fetched when a token first needs one.
AUTHENTICATOR = Authenticator(SETTINGS.caller_auth, token_upstream.fetch)
# The quota store of the process, per Quotas (one in production): opened by the worker's boot
# (main.py's lifespan calls quota_store), only when quotas are configured; redis is imported
# then, never on the no-quota path.
_QUOTA_STORES: dict = {}


def quota_store(quotas: Quotas, pool_size: int):
    store = _QUOTA_STORES.get(quotas)
    if store is None:
        import token_quota_store  # noqa: PLC0415 - deferred on purpose: it imports redis
        store = _QUOTA_STORES[quotas] = token_quota_store.Store(quotas.store, pool_size)
    return store


class Outcome:
    """What one request came to: its status and code, the body and extra headers to send, and
    what its log line says. Mutable: later steps add the caller, quota and auth details. (A
    plain class: a dataclass costs about 1 ms of the cold start to create, this one nothing.)"""
    __slots__ = ("status", "code", "body", "headers", "agent_id", "upstream_status", "stack_trace", "subject",
                 "app_id", "auth_problem", "quota", "quota_problem")

    def __init__(self, status: int, code: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = (),
                 agent_id: str | None = None, upstream_status: int | None = None, stack_trace: str | None = None):
        self.status = status
        self.code = code
        self.body = body
        self.headers = headers
        self.agent_id = agent_id
        self.upstream_status = upstream_status
        self.stack_trace = stack_trace
        self.subject: str | None = None  # the verified caller (ID token `sub`)
        self.app_id: str | None = None  # the verified app (App Check token `sub`)
        self.auth_problem: str | None = None  # why a caller was refused (never a token)
        self.quota: str | None = None  # "caller" / "global" (refused), "unavailable", "open" (minted unchecked)
        self.quota_problem: str | None = None  # why the store could not answer (an exception class name)

    def __repr__(self) -> str:
        return f"Outcome({self.status}, {self.code!r})"


def _rejected(rejection: Rejection, agent_id: str | None = None, upstream_status: int | None = None) -> Outcome:
    return Outcome(rejection.status, rejection.code, _ERROR_BODIES[rejection.code], rejection.headers,
                   agent_id, upstream_status)


# Headers a request may carry at most once: the edge (Cloud Armor, the load balancer) and the
# function could each read a different copy. Canonical spelling, for the refusal's message.
_SINGLE_HEADERS = {"origin": "Origin", "authorization": "Authorization", "x-firebase-appcheck": "X-Firebase-AppCheck"}
_DUPLICATE_BODIES = {key: json.dumps({"error": "duplicate_header", "message": f"Send the {name} header at most once."}
                                     ).encode() for key, name in _SINGLE_HEADERS.items()}

# header_map's entry for the first of them that came more than once. No header name can hold
# a NUL (RFC 9110 5.1: a token), so it never collides; a plain dict (not a subclass with an
# attribute, which measured 11 % slower here: CPython specialises only exact dicts).
DUPLICATE = "\x00duplicate"


def header_map(scope) -> dict[str, str]:
    """The request's headers as one dict, built once per request (they are looked up a dozen
    times): names lower-cased, values decoded as latin-1, and of a repeated header the first
    wins, all exactly as Starlette's `Request.headers.get` answers; a repeated Origin,
    Authorization or X-Firebase-AppCheck is noted in the same pass, under DUPLICATE."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
        elif key in _SINGLE_HEADERS and DUPLICATE not in headers:
            headers[DUPLICATE] = key
    return headers


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _read_at_most(request: Request, limit: int) -> bytes:
    """Up to `limit` bytes of the body (more only means "over the limit": the caller checks);
    stops reading as soon as the limit is passed, so an oversized body is never held."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def request_path(request: Request) -> str:
    """The path as the server received it (percent-decoded, never normalised: "//token" is
    not "/token"); the contract serves only "/" and "/token" exactly."""
    return request.scope.get("path") or "/"


async def _decide(request: Request, headers: dict[str, str], settings: Settings, decision,
                  authenticator: Authenticator) -> Outcome:
    """DESIGN.md's "Order of checks", all in this one place: the first failing check answers,
    and nothing rejected reaches Outspeed (or the quota store, or Firebase). Each step is a pure
    decision (token_policy, token_quota) or one bounded I/O call (credentials, body, consumption,
    store, upstream). `decision` is decide_origin's answer, None for a repeated header."""
    if decision is None:  # 0. a repeated Origin/Authorization/X-Firebase-AppCheck: no copy is trusted
        return Outcome(400, "duplicate_header", _DUPLICATE_BODIES[headers[DUPLICATE]])
    if request_path(request) not in PATHS:  # 1. path
        return _rejected(Rejection("not_found"))
    if not decision.allowed:  # 2. origin
        return _rejected(Rejection("origin_not_allowed"))
    method = request.method
    if method == "OPTIONS":  # 3. preflight (never needs credentials)
        return Outcome(204, "preflight", headers=preflight_headers(settings))
    if method != "POST":  # 4. method
        return _rejected(Rejection("method_not_allowed", (("Allow", METHODS),)))
    caller = None
    if authenticator.enabled:  # 5. caller credentials, before any of the body is read
        caller = await authenticator.check(headers.get("authorization"), headers.get("x-firebase-appcheck"))
        if isinstance(caller, Denied):
            outcome = _rejected(caller.rejection)
            outcome.auth_problem = caller.reason
            return outcome
    body = await _read_body(request, headers)  # 6-8. content type, size, JSON
    if isinstance(body, Rejection):
        return _attributed(_rejected(body), caller)
    call = plan(body, settings)  # 9. field formats and policy
    if isinstance(call, Rejection):
        return _attributed(_rejected(call), caller)
    if not settings.api_key:  # 10. key present
        return _attributed(_rejected(Rejection("not_configured"), call.agent_id), caller)
    if authenticator.consumer is not None:  # 11. App Check consumption: a body refused above never burns the token
        consumed = await authenticator.consumer.consume(token_auth.app_check_token(headers.get("x-firebase-appcheck")))
        if isinstance(consumed, Refused):
            outcome = _rejected(consumed.rejection, call.agent_id)
            outcome.auth_problem = consumed.reason
            return _attributed(outcome, caller)
    held = None
    if settings.quotas is not None:  # 12. quota: only a request that passed every check above takes from a budget
        held = await _take_from_budget(settings, caller.subject if caller is not None else None)
        if isinstance(held, Outcome):  # refused, or the store could not answer (fail closed)
            held.agent_id = call.agent_id
            return _attributed(held, caller)
    return _attributed(await _mint(call, settings, held), caller)  # 13. upstream (a failed mint gives back)


def _attributed(outcome: Outcome, caller) -> Outcome:
    """The verified caller and app on the outcome (its log line), when callers are verified."""
    if caller is not None:
        outcome.subject, outcome.app_id = caller.subject, caller.app_id
    return outcome


async def _read_body(request: Request, headers: dict[str, str]) -> dict | Rejection:
    """Content type -> size -> JSON: the body as a JSON object, or the first refusal."""
    if not is_json_content_type(headers.get("content-type")):
        return Rejection("unsupported_media_type")
    if too_large(_content_length(headers)):
        return Rejection("payload_too_large")  # not read at all
    raw = await _read_at_most(request, MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:  # no (or a lying) Content-Length: count what actually came
        return Rejection("payload_too_large")
    return parse_json_object(raw)


async def _mint(call, settings: Settings, held: _Held | None = None) -> Outcome:
    """The upstream call; a held reservation goes back when nothing was minted."""
    try:
        result = await token_upstream.mint(call, settings)
    except Exception:
        if held is not None and held.plan is not None:
            await _give_back(held)
        raise
    if isinstance(result, Minted):
        outcome = Outcome(200, "ok", result.body, (), call.agent_id, result.upstream_status)
    else:
        if held is not None and held.plan is not None:
            await _give_back(held)
        outcome = _rejected(result.rejection, call.agent_id, result.upstream_status)
    if held is not None and held.plan is None:
        outcome.quota, outcome.quota_problem = "open", held.problem
    return outcome


class _Held(NamedTuple):
    """A reservation taken (plan set), or none because the store could not answer and
    QUOTA_FAIL_OPEN says mint anyway (plan None, problem set)."""
    store: object
    plan: token_quota.Plan | None
    problem: str | None = None


async def _take_from_budget(settings: Settings, subject: str | None) -> _Held | Outcome:
    quotas = settings.quotas
    windows = token_quota.plan(quotas, subject, time.time())  # pure: which windows, which keys
    store = quota_store(quotas, settings.threads)
    try:
        full = await store.reserve(windows)  # one atomic step in the store, bounded
    except StoreUnavailable as unavailable:
        if quotas.fail_open:
            return _Held(store, None, str(unavailable))
        outcome = _rejected(token_quota.UNAVAILABLE)
        outcome.quota, outcome.quota_problem = "unavailable", str(unavailable)
        return outcome
    exceeded = token_quota.decide(windows, full)  # pure: which budget refused, Retry-After
    if exceeded is not None:
        outcome = _rejected(exceeded.rejection)
        outcome.quota = exceeded.budget
        return outcome
    return _Held(store, windows)


async def _give_back(held: _Held) -> None:
    try:
        await held.store.release(held.plan)
    except StoreUnavailable:
        pass  # the window keeps one mint too many until it resets: the safe side


def _internal_error(exc: BaseException) -> Outcome:
    outcome = _rejected(Rejection("internal_error"))
    outcome.stack_trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return outcome


def _response(outcome: Outcome, cors: tuple[tuple[str, str], ...]) -> Response:
    if outcome.status == 204:
        response = Response(status_code=204)  # no body, so no type and no length
    else:
        response = Response(outcome.body, status_code=outcome.status, media_type="application/json")
    response.raw_headers.extend(_encoded(BASE_HEADERS + cors + outcome.headers))
    return response


@functools.lru_cache(maxsize=256)
def _encoded(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """Response headers as ASGI wants them. Nearly every response repeats one of a few
    combinations (per allowed origin), so each is encoded once (a Retry-After value passed on
    from Outspeed is a rare, bounded-size entry)."""
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers)


def log_request(request_method: str, path: str, headers, client, outcome: Outcome, started: float,
                settings: Settings) -> None:
    get = headers.get
    line = token_log.request_line(
        method=request_method, path=path, status=outcome.status, code=outcome.code,
        elapsed=time.perf_counter() - started, user_agent=get("user-agent"),
        remote_ip=client[0] if client else None,
        forwarded_for=get("x-forwarded-for"), origin=get("origin"), agent_id=outcome.agent_id,
        upstream_status=outcome.upstream_status,
        trace=token_log.trace_fields(get("x-cloud-trace-context"), get("traceparent"), settings.project),
        stack_trace=outcome.stack_trace, subject=outcome.subject, app_id=outcome.app_id,
        auth_problem=outcome.auth_problem, quota=outcome.quota, quota_problem=outcome.quota_problem)
    token_log.emit(line, settings.api_key)


def respond(request: Request, headers, outcome: Outcome, cors: tuple[tuple[str, str], ...],
            started: float, settings: Settings) -> Response:
    response = _response(outcome, cors)
    log_request(request.method, request_path(request), headers, request.client, outcome, started, settings)
    return response


def _cors_of(headers, settings: Settings) -> tuple[tuple[str, str], ...]:
    if DUPLICATE in headers:
        return ()
    try:
        return decide_origin(headers.get("origin"), settings).cors
    except Exception:  # noqa: BLE001 - an error answer must still go out
        return ()


async def handle(request: Request, settings: Settings = SETTINGS,
                 authenticator: Authenticator = AUTHENTICATOR) -> Response:
    started = time.perf_counter()
    headers = header_map(request.scope)
    cors: tuple[tuple[str, str], ...] = ()
    try:
        decision = None if DUPLICATE in headers else decide_origin(headers.get("origin"), settings)
        cors = decision.cors if decision is not None else ()  # a repeated Origin is granted no CORS
        outcome = await _decide(request, headers, settings, decision, authenticator)
    except ClientDisconnect:
        outcome = Outcome(*_CLIENT_GONE)
    except Exception as exc:  # noqa: BLE001 - the contract: anything unexpected is internal_error
        outcome = _internal_error(exc)
    return respond(request, headers, outcome, cors, started, settings)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """The framework's own routing answers (its 404 for /robots.txt and /favicon.ico, a 405
    for a method its routes do not list) go through the contract like any request: the
    checks decide, so the answer is exactly what the endpoint gives that path and method."""
    if getattr(exc, "status_code", None) in (404, 405):
        return await handle(request)
    return handle_escaped_request(request, exc)


def handle_escaped_request(request: Request, exc: BaseException, settings: Settings = SETTINGS) -> Response:
    started = time.perf_counter()
    headers = header_map(request.scope)
    return respond(request, headers, _internal_error(exc), _cors_of(headers, settings), started, settings)


async def _escaped(scope, receive, send, exc: Exception, started: float, response_started: bool,
                   settings: Settings) -> None:
    """An exception nothing inside caught: one log line carrying the traceback (key scrubbed),
    and, unless half an answer is already out, the contract's JSON internal_error."""
    headers, outcome = header_map(scope), _internal_error(exc)
    log_request(scope.get("method", "GET"), scope.get("path") or "/", headers, scope.get("client"),
                outcome, started, settings)
    if response_started:
        return  # half an answer is out: nothing more can be said on this connection
    await _response(outcome, _cors_of(headers, settings))(scope, receive, send)


class ContractErrors:
    """ASGI middleware: an exception that escapes everything inside it (the framework's
    routing and wrappers, the view) still answers the contract's JSON internal_error, with
    no-store and CORS, and logs one line carrying the traceback (key scrubbed). Without it the
    framework answers a plain-text 500 and logs the traceback unscrubbed."""

    def __init__(self, app, settings: Settings = SETTINGS):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response_started = False

        async def tracking_send(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001
            await _escaped(scope, receive, send, exc, started, response_started, self.settings)


class DirectApp:
    """The ASGI app the server runs: an HTTP request goes straight to `handle` (whose checks
    decide every path and method, so the framework's router, its per-request execution-id
    wrappers and Starlette's middleware stack have nothing left to decide); lifespan and any
    other scope go to the framework's own app. Same answers as through the framework, for
    about 30 % less CPU per request (README, Performance).

    An exception escaping `handle` or the sending of its response is handled as ContractErrors
    does: the JSON internal_error if nothing was sent yet, and one log line either way."""

    def __init__(self, framework_app, settings: Settings = SETTINGS):
        self.framework_app = framework_app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.framework_app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            response = await handle(Request(scope, receive), self.settings)
        except Exception as exc:  # noqa: BLE001
            await _escaped(scope, receive, send, exc, started, False, self.settings)
            return
        try:
            await response(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - Starlette sends the start first: treat it as out
            await _escaped(scope, receive, send, exc, started, True, self.settings)
