"""The endpoint's HTTP contract (DESIGN.md, "HTTP contract of the endpoint") as data,
written from the design, not from function/: the oracle that `make bench` and the
reliability tests (tests/function/test_load.py, test_faults.py, test_hostile.py) check
responses against.
"""
from __future__ import annotations

import json

# code -> status, straight from DESIGN.md's error table
ERRORS: dict[str, int] = {
    "invalid_json": 400,
    "invalid_agent_id": 400,
    "invalid_source": 400,
    "agent_id_required": 400,
    "session_config_not_allowed": 400,
    "duplicate_header": 400,
    "origin_not_allowed": 403,
    "agent_not_allowed": 403,
    "not_found": 404,
    "agent_not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "upstream_rate_limited": 429,
    "not_configured": 500,
    "internal_error": 500,
    "upstream_auth_failed": 502,
    "upstream_error": 502,
    "upstream_bad_response": 502,
    "upstream_unreachable": 502,
    "upstream_timeout": 504,
}
ERROR_STATUSES = frozenset(ERRORS.values())
MAX_BODY_BYTES = 16 * 1024


class ContractViolation(AssertionError):
    pass


def outcome(status: int, headers, body: bytes, *, method: str = "POST") -> str:
    """Check one response against the contract's shapes; return "ok" (200 with an ephemeral
    key), "preflight" (204) or the error code. Raises ContractViolation otherwise."""
    def fail(why: str) -> ContractViolation:
        return ContractViolation(f"{why}: status {status}, body {body[:300]!r}")

    if headers.get("Cache-Control") != "no-store" and status != 204:
        raise fail("missing Cache-Control: no-store")
    if status == 204:
        if body:
            raise fail("204 with a body")
        return "preflight"
    if method == "HEAD":  # no body by HTTP; only the status can be checked
        if status == 200 or status in ERROR_STATUSES:
            return f"head-{status}"
        raise fail("status outside the contract")
    if not headers.get("Content-Type", "").startswith("application/json"):
        raise fail(f"Content-Type {headers.get('Content-Type')!r} is not JSON")
    try:
        data = json.loads(body)
    except ValueError:
        raise fail("body is not JSON") from None
    if status == 200:
        secret = data.get("client_secret") if isinstance(data, dict) else None
        if not (isinstance(secret, dict) and isinstance(secret.get("value"), str) and secret["value"]):
            raise fail("200 without client_secret.value")
        return "ok"
    if status not in ERROR_STATUSES:
        raise fail("status outside the contract")
    if not (isinstance(data, dict) and set(data) == {"error", "message"} and isinstance(data["message"], str)
            and data["message"]):
        raise fail('error body is not {"error", "message"}')
    code = data["error"]
    if ERRORS.get(code) != status:
        raise fail(f"error code {code!r} does not belong to status {status}")
    return code
