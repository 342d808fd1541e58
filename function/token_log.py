"""One structured JSON line per request on stdout, in the shape Cloud Logging parses
(https://cloud.google.com/logging/docs/structured-logging): severity, message, httpRequest,
trace. What is never logged: the API key (scrubbed even from tracebacks), ephemeral key
values (the upstream answer is never passed here), request bodies and caller tokens (only
the verified `subject` and `appId` of a caller, and a short reason when one was refused).
"""
from __future__ import annotations

import json
import re
import sys
import threading

_TRACE_KEY = "logging.googleapis.com/trace"
_SPAN_KEY = "logging.googleapis.com/spanId"
# X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS (span decimal); traceparent: 00-TRACE-SPAN-FLAGS
_CLOUD_TRACE_RE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?")
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_MAX_FIELD = 256  # caller-controlled strings (origin, user agent, path) are cut here
_write_lock = threading.Lock()
# One encoder for every line (json.dumps with arguments would build a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _cut(value: str | None) -> str | None:
    return value if value is None or len(value) <= _MAX_FIELD else value[:_MAX_FIELD] + "..."


def trace_fields(cloud_trace: str | None, traceparent: str | None, project: str | None) -> dict[str, str]:
    """The trace (and span) of the request as Cloud Logging wants them; {} without a project
    (a bare trace id would not link) or without a well-formed trace header."""
    if not project:
        return {}
    if cloud_trace:
        match = _CLOUD_TRACE_RE.match(cloud_trace)
        if match:
            fields = {_TRACE_KEY: f"projects/{project}/traces/{match.group(1).lower()}"}
            span = match.group(2)
            if span and int(span) < 2 ** 64:
                fields[_SPAN_KEY] = format(int(span), "016x")
            return fields
    if traceparent:
        match = _TRACEPARENT_RE.fullmatch(traceparent.strip())
        if match:
            return {_TRACE_KEY: f"projects/{project}/traces/{match.group(1)}", _SPAN_KEY: match.group(2)}
    return {}


def severity_of(status: int) -> str:
    return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"


def request_line(*, method: str, path: str, status: int, code: str, elapsed: float,
                 user_agent: str | None, remote_ip: str | None, forwarded_for: str | None, origin: str | None,
                 agent_id: str | None, upstream_status: int | None, trace: dict[str, str],
                 stack_trace: str | None = None, subject: str | None = None, app_id: str | None = None,
                 auth_problem: str | None = None, quota: str | None = None,
                 quota_problem: str | None = None) -> str:
    message = f"{method} {_cut(path)} {status} {code}"
    if stack_trace:
        message += "\n" + stack_trace  # Error Reporting picks the traceback up from the message
    entry = {
        "severity": severity_of(status),
        "message": message,
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": _cut(path),
            "status": status,
            "latency": f"{elapsed:.6f}s",
            "userAgent": _cut(user_agent),
            "remoteIp": _cut(remote_ip),
        },
        "code": code,
        # As received: its leftmost entries are whatever the client claimed, so it is kept
        # apart from remoteIp (the platform's own request log, linked by trace, has the truth).
        "forwardedFor": _cut(forwarded_for),
        "agentId": agent_id,
        "origin": _cut(origin),
        "upstreamStatus": upstream_status,
        "latencyMs": round(elapsed * 1000, 3),
        **trace,
    }
    # Caller authentication (only where it is on): verified identities, or why none was.
    if subject is not None:
        entry["subject"] = _cut(subject)
    if app_id is not None:
        entry["appId"] = _cut(app_id)
    if auth_problem is not None:
        entry["authProblem"] = _cut(auth_problem)
    # Spend ceiling (only where quotas are on): which budget refused, or that none was checked.
    if quota is not None:
        entry["quota"] = quota
    if quota_problem is not None:
        entry["quotaProblem"] = _cut(quota_problem)
    return _ENCODER.encode(entry)


def event_line(severity: str, message: str, **fields: str) -> str:
    """A line about the process rather than a request (say, a refused JWKS): no httpRequest and
    no `code`, so the request metrics never count it."""
    return _ENCODER.encode({"severity": severity, "message": message, **fields})


def emit(line: str, secret: str | None) -> None:
    """Write one line; the key is scrubbed as a last line of defence (a traceback could quote it)."""
    if secret and secret in line:
        line = line.replace(secret, "[redacted]")
    out = sys.stdout  # looked up per call: the runtime may have replaced it
    try:
        with _write_lock:
            out.write(line + "\n")  # one write: the framework's execution-id wrapper parses per write
            out.flush()
    except (OSError, ValueError):  # a closed or broken stdout must not fail the request
        pass
