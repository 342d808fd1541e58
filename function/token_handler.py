"""One request, start to finish: the contract's checks in order (the first failing one
answers, nothing rejected reaches Outspeed), the upstream call, the response, one log line.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass

import flask
import requests

import token_log
from token_policy import (ERRORS, MAX_BODY_BYTES, METHODS, PATHS, PREFLIGHT_HEADERS, Rejection,
                          decide_origin, is_json_content_type, parse_json_object, plan, too_large)
from token_settings import SETTINGS, Settings
from token_upstream import SESSION, Minted, mint

# Every response: never cached anywhere (an ephemeral key is single-use and short-lived, and
# even errors depend on Origin), never sniffed as anything but its declared type.
BASE_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
_ERROR_BODIES = {code: json.dumps({"error": code, "message": message}).encode()
                 for code, (_, message) in ERRORS.items()}
_DRAIN_CHUNK = 64 * 1024
_DRAIN_MAX_CHUNKS = 1024  # 64 MiB, twice Cloud Run's request limit: the loop always ends


@dataclass
class Outcome:
    status: int
    code: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    agent_id: str | None = None
    upstream_status: int | None = None
    stack_trace: str | None = None


def _rejected(rejection: Rejection, agent_id: str | None = None, upstream_status: int | None = None) -> Outcome:
    return Outcome(rejection.status, rejection.code, _ERROR_BODIES[rejection.code], rejection.headers,
                   agent_id, upstream_status)


def _read_at_most(stream, limit: int) -> bytes:
    """Up to `limit` bytes of the body; reads may come back short, so loop (each pass either
    grows the buffer or ends)."""
    chunks, size = [], 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _drain(stream) -> None:
    # The framework reads whatever body is left after the response (into memory); discarding
    # it here in chunks keeps an oversized body from ever being held whole.
    for _ in range(_DRAIN_MAX_CHUNKS):
        if not stream.read(_DRAIN_CHUNK):
            return


def request_path(request: flask.Request) -> str:
    """The path as the server received it. Flask's request.path folds leading slashes
    ("//token" -> "/token"); the contract serves only "/" and "/token" exactly."""
    return request.environ.get("PATH_INFO") or "/"


def _decide(request: flask.Request, settings: Settings, session: requests.Session, origin_allowed: bool) -> Outcome:
    if request_path(request) not in PATHS:
        return _rejected(Rejection("not_found"))
    if not origin_allowed:
        return _rejected(Rejection("origin_not_allowed"))
    method = request.method
    if method == "OPTIONS":
        return Outcome(204, "preflight", headers=PREFLIGHT_HEADERS)
    if method != "POST":
        return _rejected(Rejection("method_not_allowed", (("Allow", METHODS),)))
    if not is_json_content_type(request.headers.get("Content-Type")):
        return _rejected(Rejection("unsupported_media_type"))
    stream = request.stream
    if too_large(request.content_length):
        _drain(stream)
        return _rejected(Rejection("payload_too_large"))
    raw = _read_at_most(stream, MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:  # no (or a lying) Content-Length: count what actually came
        _drain(stream)
        return _rejected(Rejection("payload_too_large"))
    body = parse_json_object(raw)
    if isinstance(body, Rejection):
        return _rejected(body)
    call = plan(body, settings)
    if isinstance(call, Rejection):
        return _rejected(call)
    if not settings.api_key:
        return _rejected(Rejection("not_configured"), call.agent_id)
    result = mint(call, settings, session)
    if isinstance(result, Minted):
        return Outcome(200, "ok", result.body, (), call.agent_id, result.upstream_status)
    return _rejected(result.rejection, call.agent_id, result.upstream_status)


def _internal_error(exc: BaseException) -> Outcome:
    outcome = _rejected(Rejection("internal_error"))
    outcome.stack_trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return outcome


def respond(request: flask.Request, outcome: Outcome, cors: tuple[tuple[str, str], ...],
            started: float, settings: Settings) -> flask.Response:
    headers = BASE_HEADERS + cors + outcome.headers
    if outcome.status == 204:
        response = flask.Response(status=204, headers=headers)
        del response.headers["Content-Type"]  # no body, so no type (Flask would claim text/html)
    else:
        response = flask.Response(outcome.body, status=outcome.status, headers=headers,
                                  content_type="application/json")
    get = request.headers.get
    line = token_log.request_line(
        method=request.method, path=request_path(request), status=outcome.status, code=outcome.code,
        elapsed=time.perf_counter() - started, user_agent=get("User-Agent"), remote_ip=request.remote_addr,
        forwarded_for=get("X-Forwarded-For"), origin=get("Origin"), agent_id=outcome.agent_id,
        upstream_status=outcome.upstream_status,
        trace=token_log.trace_fields(get("X-Cloud-Trace-Context"), get("traceparent"), settings.project),
        stack_trace=outcome.stack_trace)
    token_log.emit(line, settings.api_key)
    return response


def handle(request: flask.Request, settings: Settings = SETTINGS,
           session: requests.Session = SESSION) -> flask.Response:
    started = time.perf_counter()
    cors: tuple[tuple[str, str], ...] = ()
    try:
        decision = decide_origin(request.headers.get("Origin"), settings)
        cors = decision.cors
        outcome = _decide(request, settings, session, decision.allowed)
    except Exception as exc:  # noqa: BLE001 - the contract: anything unexpected is internal_error
        outcome = _internal_error(exc)
    return respond(request, outcome, cors, started, settings)


def handle_escaped(request: flask.Request, exc: BaseException, settings: Settings = SETTINGS) -> flask.Response:
    """An exception that escaped the view (raised by the framework around it): still the
    contract's JSON internal_error, still one log line with the traceback."""
    started = time.perf_counter()
    original = getattr(exc, "original_exception", None) or exc
    try:
        cors = decide_origin(request.headers.get("Origin"), settings).cors
    except Exception:  # noqa: BLE001
        cors = ()
    return respond(request, _internal_error(original), cors, started, settings)
