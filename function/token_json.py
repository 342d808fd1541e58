"""Strict JSON (RFC 8259, UTF-8) at the endpoint's borders: the caller's body, the
SESSION_CONFIG setting, Outspeed's answer, and (caller authentication) a token's JOSE header
and the issuer's JWKS / discovery documents. Python's json module is lenient by default
(NaN/Infinity literals, UTF-16/32 input, lone surrogates); what it lets through here would
either break a browser's JSON.parse or reach Outspeed as something that is not JSON.
"""
from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# One decoder for every call (json.loads with an argument would build a new one, scanner
# included, per call: it showed in the per-request profile).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(raw: bytes | str) -> Any:
    """Parse; ValueError for anything that is not JSON in UTF-8 (a leading BOM is ignored,
    as RFC 8259 allows)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # UnicodeDecodeError is a ValueError
    try:
        return _DECODER.decode(text.removeprefix("\ufeff"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; ValueError for what cannot be sent as JSON (a number out of range,
    an unpaired \\u surrogate)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
