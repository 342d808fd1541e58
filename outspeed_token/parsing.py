"""Config readers shared by every config module (settings, monitoring_settings): each turns a
value as the Pulumi CLI passes it (strings; JSON for lists and objects) or YAML-typed (from
`stackfiles`) into a checked Python value, or raises one `ConfigError` naming the key and the
fix. `ConfigError` is a `pulumi.RunError`, so `pulumi preview` prints the message without a
stack trace and fails.

Pure (no Pulumi runtime, no pulumi_gcp), and at the bottom of the package's import layers
(.importlinter): it imports nothing of the package but `source` (to load the function's own
value rules), so the config modules import it and never each other in a cycle.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Optional

from pulumi import RunError

from .source import function_module

PROJECT = "outspeed-token"

# The function's own value rules (function/token_rules.py): every value the function reads
# from its environment is checked here by the same code, so preview refuses what a cold start
# would refuse (tests/test_rule_agreement.py).
rules = function_module("token_rules")


class ConfigError(RunError):
    """A stack config value is wrong. `key` names it; the message says how to fix it."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        qualified = key if ":" in key else f"{PROJECT}:{key}"
        super().__init__(f"config {qualified}: {problem}. Fix: {fix}")


def apply_rule(key: str, fix: str, rule: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Apply one of the function's rules; its problem becomes a ConfigError naming the key."""
    try:
        return rule(*args, **kwargs)
    except rules.RuleError as error:
        raise ConfigError(key, str(error), fix) from None


# --- parsing helpers: each raises ConfigError naming the key ---------------------------------

def json_value(key: str, value: Any, kind: str, example: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(key, f"must be {kind}, got {value!r}", f"set it as {kind}, e.g. {example}") from None


def boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    path = " --path" if "." in key else ""  # nested keys (callerAuth.anonymous) need --path
    raise ConfigError(key, f"must be true or false, got {value!r}", f"pulumi config set{path} {key} true|false")


def integer(key: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    number: Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    if number is None:
        raise ConfigError(key, f"must be a whole number, got {value!r}", f"pulumi config set {key} <number>")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        problem = "must be positive" if minimum == 1 and number < 1 else f"must be {bound}"
        raise ConfigError(key, f"{problem}, got {number}", f"set {key} to a number {bound}")
    return number


def str_list(key: str, value: Any) -> list[str]:
    value = json_value(key, value, "a list of strings", '["a", "b"]')
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a list of strings, got {value!r}",
                          f"list it in Pulumi.<stack>.yaml, e.g. {PROJECT}:{key}: [\"a\", \"b\"]")
    return value


def hostname(key: str, raw: str) -> str:
    """One exact hostname: no wildcard, scheme, path or port; returned lower-cased."""
    host = raw.strip().lower()
    fix = f"list exact hostnames only, e.g. app.example.com (got {raw!r})"
    if "*" in host:
        raise ConfigError(key, f"{raw!r} contains a wildcard; wildcards are not supported",
                          "list every hostname explicitly, e.g. app.example.com and www.example.com")
    if "://" in host:
        raise ConfigError(key, f"{raw!r} has a scheme", f"drop the scheme: {host.split('://', 1)[1].split('/')[0]}")
    if "/" in host:
        raise ConfigError(key, f"{raw!r} has a path", f"drop the path: {host.split('/', 1)[0]}")
    if ":" in host:
        raise ConfigError(key, f"{raw!r} has a port; ports are ignored when origins are matched",
                          f"drop the port: {host.split(':', 1)[0]}")
    if not rules.HOSTNAME_RE.fullmatch(host):
        raise ConfigError(key, f"{raw!r} is not a hostname", fix)
    return apply_rule(key, fix, rules.hostname, host)


def unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def object_fields(key: str, value: Any, fields: tuple[str, ...], example: str) -> dict:
    """A mapping whose keys are all among `fields` (unknown keys are typos: refused)."""
    value = json_value(key, value, "an object", example)
    if not isinstance(value, dict):
        raise ConfigError(key, f"must be an object, got {value!r}", f"write it as a YAML mapping, e.g. {example}")
    unknown = sorted(str(k) for k in set(value) - set(fields))
    if unknown:
        raise ConfigError(key, f"unknown field(s) {', '.join(unknown)}", f"use only {', '.join(fields)}")
    return value


def https_url(key: str, value: Any, example: str, rule: Callable[..., str]) -> str:
    """An https URL by the function's rule. Loopback http is refused here even though the
    function accepts it for local runs: a deployed function cannot reach loopback."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"must be an https URL, got {value!r}", f"set it, e.g. {example}")
    return apply_rule(key, f"use the https URL, e.g. {example}", rule, value.strip(), local_http=False)
