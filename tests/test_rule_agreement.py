"""Preview and cold start agree on every value (issue 18, finding 6).

DESIGN.md: bad config fails `pulumi preview`. So every value the function checks at cold
start is run through both sides here:
- the infra: stack config -> `outspeed_token.settings.parse_mapping` (accepts, or raises ConfigError);
- the function: the environment the infra derives from a good config, with the value under
  test written into its variable as the infra would write it -> `token_settings.from_env`
  (accepts, or raises SettingsError).
Both must give the table's answer. The one deliberate difference: plain http on a loopback
host, which the function takes for local runs and tests and a deployed stack can never reach.

Only the public entry points of each side are used, so the table also runs against code that
does not share rules (it failed on the code before token_rules: audience with a space,
non-ASCII or over 512 characters, issuer port 99999, ...).
"""
from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from outspeed_token.settings import ConfigError, function_environment, parse_mapping

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "function"))
import token_settings  # noqa: E402  (the function's own settings module, as deployed)

NUMBER = "123456789012"
BASE: dict[str, Any] = {
    "authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
    "allowedHostnames": ["app.example.com"], "sessionConfig": {"model": "outspeed-v1"}, "concurrency": 80,
    "callerAuth": {"idToken": {"issuer": "https://securetoken.google.com/my-project", "audience": "my-project",
                               "jwksUri": "https://keys.example.com/jwks.json"},
                   "appCheck": {"projectNumber": NUMBER, "appIds": [f"1:{NUMBER}:web:0a1b2c"]}},
}
GENERIC = {"callerAuth.idToken.issuer": "https://issuer.example.com"}  # not Firebase: audience is free

# config path -> (environment variable, how the infra writes the value there)
VARIABLES = {
    "callerAuth.idToken.issuer": ("AUTH_ID_TOKEN_ISSUER", str),
    "callerAuth.idToken.audience": ("AUTH_ID_TOKEN_AUDIENCE", str),
    "callerAuth.idToken.jwksUri": ("AUTH_ID_TOKEN_JWKS_URI", str),
    "callerAuth.appCheck.projectNumber": ("AUTH_APP_CHECK_PROJECT_NUMBER", str),
    "callerAuth.appCheck.appIds": ("AUTH_APP_CHECK_APP_IDS", ",".join),
    "allowedHostnames": ("ALLOWED_HOSTNAMES", ",".join),
    "agentIds": ("ALLOWED_AGENT_IDS", ",".join),
    "outspeedApiBase": ("OUTSPEED_API_BASE", str),
    "concurrency": ("THREADS", str),
    "sessionConfig": ("SESSION_CONFIG", lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"))),
}

OK, BAD = True, False
LOCAL = "local"  # refused by preview (a deployed function cannot reach loopback), taken by local runs

CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("the base config", {}, OK),
    # --- callerAuth.idToken.issuer / AUTH_ID_TOKEN_ISSUER
    ("issuer, any https", {**GENERIC, "callerAuth.idToken.audience": "aud-1"}, OK),
    ("issuer with a port and path", {"callerAuth.idToken.issuer": "https://id.example.com:8443/realms/a"}, OK),
    ("issuer with a trailing slash (Auth0 writes one)", {"callerAuth.idToken.issuer": "https://acme.auth0.com/"}, OK),
    ("issuer with port 99999", {"callerAuth.idToken.issuer": "https://issuer.example.com:99999"}, BAD),
    ("issuer with port 0", {"callerAuth.idToken.issuer": "https://issuer.example.com:0"}, BAD),
    ("issuer with a non-numeric port", {"callerAuth.idToken.issuer": "https://issuer.example.com:https"}, BAD),
    ("issuer with a space", {"callerAuth.idToken.issuer": "https://issuer.example.com/a b"}, BAD),
    ("issuer with non-ASCII", {"callerAuth.idToken.issuer": "https://issuer.example.com/réalm"}, BAD),
    ("issuer with a query", {"callerAuth.idToken.issuer": "https://issuer.example.com/?x=1"}, BAD),
    ("issuer with a fragment", {"callerAuth.idToken.issuer": "https://issuer.example.com/#x"}, BAD),
    ("issuer with credentials", {"callerAuth.idToken.issuer": "https://u:p@issuer.example.com"}, BAD),
    ("issuer over http", {"callerAuth.idToken.issuer": "http://issuer.example.com"}, BAD),
    ("issuer without scheme", {"callerAuth.idToken.issuer": "issuer.example.com"}, BAD),
    ("issuer with no host", {"callerAuth.idToken.issuer": "https:///x"}, BAD),
    ("issuer on an IPv6 literal", {"callerAuth.idToken.issuer": "https://[2001:db8::1]/"}, BAD),
    ("issuer that is not a hostname", {"callerAuth.idToken.issuer": "https://bad_host.example.com"}, BAD),
    ("issuer on loopback http", {"callerAuth.idToken.issuer": "http://127.0.0.1:9000"}, LOCAL),
    # finding 7: issuers that can never verify anything
    ("App Check's issuer as the ID-token issuer",
     {"callerAuth.idToken.issuer": f"https://firebaseappcheck.googleapis.com/{NUMBER}"}, BAD),
    ("Firebase issuer of another project than the audience",
     {"callerAuth.idToken.issuer": "https://securetoken.google.com/other-project"}, BAD),
    ("Firebase issuer with a trailing slash", {"callerAuth.idToken.issuer": "https://securetoken.google.com/my-project/"},
     BAD),
    ("Firebase issuer with an upper-case host",
     {"callerAuth.idToken.issuer": "https://SecureToken.google.com/my-project"}, BAD),
    # --- callerAuth.idToken.audience / AUTH_ID_TOKEN_AUDIENCE
    ("audience padded with spaces", {"callerAuth.idToken.audience": " my-project "}, OK),
    ("audience of 512 characters", {**GENERIC, "callerAuth.idToken.audience": "a" * 512}, OK),
    ("audience as a URL", {**GENERIC, "callerAuth.idToken.audience": "https://api.example.com/"}, OK),
    ("audience with a space", {**GENERIC, "callerAuth.idToken.audience": "my project"}, BAD),
    ("audience with non-ASCII", {**GENERIC, "callerAuth.idToken.audience": "projét"}, BAD),
    ("audience of 513 characters", {**GENERIC, "callerAuth.idToken.audience": "a" * 513}, BAD),
    ("audience with a control character", {**GENERIC, "callerAuth.idToken.audience": "a\tb"}, BAD),
    ("Firebase audience of another project", {"callerAuth.idToken.audience": "other-project"}, BAD),
    # --- callerAuth.idToken.jwksUri / AUTH_ID_TOKEN_JWKS_URI
    ("jwks uri with a query", {"callerAuth.idToken.jwksUri": "https://keys.example.com/jwks?v=1"}, OK),
    ("jwks uri with port 99999", {"callerAuth.idToken.jwksUri": "https://keys.example.com:99999/jwks"}, BAD),
    ("jwks uri over http", {"callerAuth.idToken.jwksUri": "http://keys.example.com/jwks"}, BAD),
    ("jwks uri with a fragment", {"callerAuth.idToken.jwksUri": "https://keys.example.com/jwks#k"}, BAD),
    ("jwks uri with non-ASCII", {"callerAuth.idToken.jwksUri": "https://keys.example.com/clés"}, BAD),
    ("jwks uri on loopback http", {"callerAuth.idToken.jwksUri": "http://localhost:9000/jwks"}, LOCAL),
    # --- callerAuth.appCheck / AUTH_APP_CHECK_*
    ("project number as a YAML int", {"callerAuth.appCheck.projectNumber": int(NUMBER)}, OK),
    ("project number of 20 digits", {"callerAuth.appCheck.projectNumber": "1" * 20,
                                     "callerAuth.appCheck.appIds": []}, OK),
    ("project number that is a project id", {"callerAuth.appCheck.projectNumber": "my-project"}, BAD),
    ("negative project number", {"callerAuth.appCheck.projectNumber": "-12"}, BAD),
    ("project number of 21 digits", {"callerAuth.appCheck.projectNumber": "1" * 21}, BAD),
    ("app ids of the project", {"callerAuth.appCheck.appIds": [f"1:{NUMBER}:web:ab", f"1:{NUMBER}:ios:cd"]}, OK),
    ("app id in another shape", {"callerAuth.appCheck.appIds": ["my-app"]}, OK),
    ("app id of another project number", {"callerAuth.appCheck.appIds": ["1:999999999999:web:ab"]}, BAD),
    ("app ids after the project number changed", {"callerAuth.appCheck.projectNumber": "555"}, BAD),
    ("app id with a space", {"callerAuth.appCheck.appIds": ["app id"]}, BAD),
    ("app id of 129 characters", {"callerAuth.appCheck.appIds": ["a" * 129]}, BAD),
    # --- allowedHostnames / ALLOWED_HOSTNAMES
    ("hostnames in any case, IPv4, localhost", {"allowedHostnames": ["App.Example.com", "127.0.0.1", "localhost"]}, OK),
    ("hostname with a wildcard", {"allowedHostnames": ["*.example.com"]}, BAD),
    ("hostname with a port", {"allowedHostnames": ["app.example.com:8443"]}, BAD),
    ("hostname with a scheme", {"allowedHostnames": ["https://app.example.com"]}, BAD),
    ("hostname with a space", {"allowedHostnames": ["app example.com"]}, BAD),
    ("hostname with non-ASCII", {"allowedHostnames": ["bücher.example.com"]}, BAD),
    ("hostname label of 64 characters", {"allowedHostnames": ["a" * 64 + ".com"]}, BAD),
    # --- agentIds / ALLOWED_AGENT_IDS
    ("agent ids of every allowed character", {"agentIds": ["a.b:c_d-1", "x" * 128]}, OK),
    ("agent id with a trailing newline", {"agentIds": ["agent-1\n"]}, OK),
    ("agent id with a space", {"agentIds": ["agent one"]}, BAD),
    ("agent id of 129 characters", {"agentIds": ["x" * 129]}, BAD),
    ("agent id with non-ASCII", {"agentIds": ["agént"]}, BAD),
    # --- outspeedApiBase / OUTSPEED_API_BASE
    ("api base with a trailing slash", {"outspeedApiBase": "https://api.outspeed.com/"}, OK),
    ("api base with a port and path", {"outspeedApiBase": "https://api.example.com:8443/v1"}, OK),
    ("api base with port 99999", {"outspeedApiBase": "https://api.outspeed.com:99999"}, BAD),
    ("api base over http", {"outspeedApiBase": "http://api.outspeed.com"}, BAD),
    ("api base with a query", {"outspeedApiBase": "https://api.outspeed.com/?x=1"}, BAD),
    ("api base with credentials", {"outspeedApiBase": "https://u:p@api.outspeed.com"}, BAD),
    ("api base on loopback http", {"outspeedApiBase": "http://127.0.0.1:8080"}, LOCAL),
    # --- concurrency / THREADS
    ("concurrency 1 and 1000", {"concurrency": 1000}, OK),
    ("concurrency 0", {"concurrency": 0}, BAD),
    ("concurrency 1001", {"concurrency": 1001}, BAD),
    # --- sessionConfig / SESSION_CONFIG
    ("session config with non-ASCII text", {"sessionConfig": {"instructions": "Soyez “brefs” ✓"}}, OK),
    ("session config with NaN (YAML .nan)", {"sessionConfig": {"temperature": math.nan}}, BAD),
    ("session config with Infinity (YAML .inf)", {"sessionConfig": {"temperature": math.inf}}, BAD),
    ("session config with a lone surrogate", {"sessionConfig": {"instructions": "\ud800"}}, BAD),
]


def _set(config: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        config = config[part]
    config[leaf] = value


def infra_side(changes: dict[str, Any]) -> tuple[bool, str]:
    config = copy.deepcopy(BASE)
    for path, value in changes.items():
        _set(config, path, value)
    try:
        parse_mapping(config)
    except ConfigError as error:
        # the changed value, its object, or a sibling the rule checks it with (issuer/audience)
        assert any(path.startswith(error.key) or path.rpartition(".")[0] == error.key.rpartition(".")[0]
                   for path in changes), (error.key, str(error))
        return False, str(error)
    return True, ""


def function_side(changes: dict[str, Any]) -> tuple[bool, str]:
    env = {**function_environment(parse_mapping(BASE), "demo-project"), "OUTSPEED_API_KEY": "agreement-test-key"}
    for path, value in changes.items():
        name, write = VARIABLES[path]
        env[name] = write(value)
    try:
        token_settings.from_env(env)
    except token_settings.SettingsError as error:
        assert any(VARIABLES[path][0] in str(error) for path in changes), str(error)
        return False, str(error)
    return True, ""


@pytest.mark.parametrize("label, changes, expected", CASES, ids=[c[0] for c in CASES])
def test_preview_and_cold_start_agree(label, changes, expected):
    infra_ok, infra_says = infra_side(changes)
    function_ok, function_says = function_side(changes)
    if expected == LOCAL:
        assert (infra_ok, function_ok) == (False, True), (infra_says, function_says)
        assert "deployed function cannot reach" in infra_says
    else:
        assert (infra_ok, function_ok) == (expected, expected), f"preview: {infra_says or 'accepted'}; " \
                                                                f"cold start: {function_says or 'accepted'}"


def test_what_preview_accepts_the_function_reads_back_unchanged():
    """Normalising (strip, lower-case) happens once, in the shared rules: the environment the
    infra writes is read by the function as the very values the config meant."""
    config = copy.deepcopy(BASE)
    config["callerAuth"]["idToken"]["audience"] = " my-project "
    config["allowedHostnames"] = [" App.Example.com "]
    config["agentIds"] = ["agent-1\n"]
    infra = parse_mapping(config)
    fn = token_settings.from_env(function_environment(infra, "demo-project"))
    assert fn.caller_auth.id_token.audience == infra.caller_auth.id_token.audience == "my-project"
    assert fn.allowed_hostnames == frozenset(infra.allowed_hostnames) == {"app.example.com"}
    assert fn.allowed_agent_ids == frozenset(infra.agent_ids) == {"agent-1"}


def test_both_sides_run_the_one_rules_file_which_needs_only_the_standard_library():
    import ast

    import token_rules
    from outspeed_token.settings import rules
    from outspeed_token.source import DEFAULT_SOURCE_DIR

    path = DEFAULT_SOURCE_DIR / "token_rules.py"
    assert Path(rules.__file__) == path == Path(token_rules.__file__).resolve()
    # The infra (Pulumi's venv, local tools) loads it without the function's dependencies.
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
