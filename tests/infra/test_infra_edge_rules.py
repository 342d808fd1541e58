"""The Cloud Armor Origin rule's semantics, checked by evaluating its RE2 pattern.

The pattern only uses syntax where RE2 and Python's `re` agree (anchors, groups, [.] and
[0-9]+), so Python can stand in for Cloud Armor's `.matches()` here.
"""
from __future__ import annotations

import re

import pytest

from outspeed_token.edge import origin_deny_expression, origin_regex

HOSTS = ("app.example.com", "www.example.com", "localhost")


def denied(origin: str | None) -> bool:
    """Evaluate the rule as Cloud Armor would: has(origin) && !origin.lower().matches(pattern)."""
    if origin is None:
        return False
    return re.search(origin_regex(HOSTS), origin.lower()) is None  # RE2 matches() is a partial match


@pytest.mark.parametrize("origin", [
    "https://app.example.com", "https://www.example.com", "https://APP.Example.COM",
    "https://app.example.com:8443", "https://localhost:5173",
])
def test_allowed_https_origins_pass(origin):
    assert not denied(origin)


@pytest.mark.parametrize("origin", [
    "http://app.example.com",           # prod is https-only
    "https://evil.com",
    "https://app.example.com.evil.com",  # suffix attack
    "https://evil-app.example.com",      # prefix attack
    "https://appxexample.com",           # '.' must be literal
    "https://app.example.com/path",
    "https://app.example.com:",
    "null",                              # sandboxed iframes / file:// pages
    "",
])
def test_other_origins_are_denied(origin):
    assert denied(origin)


def test_requests_without_origin_are_left_to_the_function():
    assert not denied(None)


def test_expression_shape_stays_within_armor_limits():
    expression = origin_deny_expression(HOSTS)
    assert expression == ("has(request.headers['origin']) && !request.headers['origin'].lower()"
                          f".matches('{origin_regex(HOSTS)}')")
    assert "\\" not in expression  # nothing to mis-escape inside the CEL string literal
    # Two subexpressions whatever the list length (Cloud Armor allows five per rule).
    assert origin_deny_expression(HOSTS * 10).count("&&") == 1
