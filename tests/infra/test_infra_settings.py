"""Stack config parsing and validation (pure: no Pulumi runtime), and the config schema files."""
from __future__ import annotations

import json

import pytest

from outspeed_token import stackfiles
from outspeed_token.settings import DEFAULTS, ConfigError, function_environment, parse, parse_mapping

DESIGN_KEYS = {
    "authEnabled", "allowedHostnames", "agentIds", "sessionConfig", "allowClientSessionConfig", "outspeedApiKey",
    "outspeedApiBase", "domain", "rateLimit", "minInstances", "maxInstances", "concurrency", "memory",
    "callerAuth", "monitoring", "quotas",
}
ISSUER = "https://securetoken.google.com/my-project"
ID_TOKEN = {"issuer": ISSUER, "audience": "my-project"}
PROD_OK = {"authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
           "allowedHostnames": ["app.example.com"], "callerAuth": {"idToken": ID_TOKEN}}


def prod_with(**changes):
    values = {**PROD_OK, **changes}
    return parse_mapping({k: v for k, v in values.items() if v is not None})


# --- the schema in Pulumi.yaml and the stack files -----------------------------------------------

def _valid(type_name, items, value):
    """Pulumi's own check of a config value against a declared type (ValidateConfigValue)."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list) and all(_valid(items["type"], items.get("items"), v) for v in value)
    return False


def test_pulumi_yaml_declares_every_design_key_with_type_default_and_description():
    declared = stackfiles.declared_keys()
    assert set(declared) == DESIGN_KEYS
    for key, decl in declared.items():
        assert decl.get("description"), key
        assert decl.get("type") in {"string", "integer", "boolean", "array", "object"}, key
        if decl["type"] == "array":
            assert decl["items"] == {"type": "string"}, key
        if key == "outspeedApiKey":
            assert decl.get("secret") is True and "default" not in decl  # required, secret
        else:
            assert "default" in decl, f"{key} has no default, so Pulumi would require it"
            assert _valid(decl["type"], decl.get("items"), decl["default"]), key


def test_pulumi_yaml_defaults_are_the_programs_defaults():
    declared = stackfiles.declared_keys()
    assert {k: d["default"] for k, d in declared.items() if "default" in d} == DEFAULTS


def test_pulumi_yaml_runtime_uses_the_project_virtualenv():
    project = stackfiles.project_file()
    assert project["name"] == "outspeed-token"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_only_set_declared_keys_with_the_declared_types(stack):
    declared = stackfiles.declared_keys()
    import yaml
    raw = yaml.safe_load((stackfiles.ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    # Users add these with `pulumi config set`; the key may only ever be there encrypted.
    if "outspeed-token:outspeedApiKey" in raw:
        assert set(raw["outspeed-token:outspeedApiKey"]) == {"secure"}, "the API key is in the stack file in plain text"
    for key, value in raw.items():
        namespace, _, bare = key.partition(":")
        if namespace == "gcp" or bare == "outspeedApiKey":
            continue
        assert namespace == "outspeed-token", key
        assert bare in declared, f"{key} is not declared in Pulumi.yaml (typo?)"
        assert _valid(declared[bare]["type"], declared[bare].get("items"), value), key


def test_stack_files_parse_into_the_documented_modes():
    dev = parse_mapping(stackfiles.project_values(stackfiles.stack_config("dev")))
    prod = parse_mapping(stackfiles.project_values(stackfiles.stack_config("prod")))
    assert (dev.auth_enabled, dev.edge_enabled, dev.ingress) == (False, False, "ALLOW_ALL")
    assert {"localhost", "127.0.0.1"} <= set(dev.allowed_hostnames) and dev.min_instances == 0
    assert (prod.auth_enabled, prod.edge_enabled, prod.ingress) == (True, True, "ALLOW_INTERNAL_AND_GCLB")
    assert prod.domain and prod.allowed_hostnames and prod.agent_ids and not prod.allow_client_session_config


# --- values as the CLI passes them (strings, JSON) parse like YAML-typed ones --------------------

def test_cli_string_values_parse_like_typed_values():
    as_cli = {"authEnabled": "true", "domain": "token.example.com", "agentIds": '["agent-1"]',
              "allowedHostnames": '["App.Example.com"]', "rateLimit": '{"requestsPerMinute": 30, "banSeconds": 60}',
              "minInstances": "1", "maxInstances": "4", "concurrency": "1", "sessionConfig": "{}",
              "callerAuth": json.dumps({"idToken": ID_TOKEN})}
    s = parse(as_cli.get)
    assert s.allowed_hostnames == ("app.example.com",)  # case-insensitive, stored lower-case
    assert (s.rate_limit.requests_per_minute, s.rate_limit.ban_seconds) == (30, 60)
    assert (s.min_instances, s.max_instances, s.concurrency) == (1, 4, 1)
    assert s.session_config is None  # {} means none


def test_unset_keys_take_the_defaults():
    s = parse_mapping({"authEnabled": False})
    assert s.api_base == "https://api.outspeed.com"
    assert (s.min_instances, s.max_instances, s.concurrency, s.memory) == (0, 10, 80, "256Mi")
    assert (s.rate_limit.requests_per_minute, s.rate_limit.ban_seconds) == (60, 300)


# --- every bad-config case of the issue: one error naming the key and the fix --------------------

BAD = [
    ("wildcard", {"allowedHostnames": ["*.example.com"]}, "allowedHostnames", "wildcard"),
    ("scheme", {"allowedHostnames": ["https://app.example.com"]}, "allowedHostnames", "scheme"),
    ("path", {"allowedHostnames": ["app.example.com/login"]}, "allowedHostnames", "path"),
    ("port", {"allowedHostnames": ["app.example.com:8443"]}, "allowedHostnames", "port"),
    ("not a hostname", {"allowedHostnames": ["app example.com"]}, "allowedHostnames", "not a hostname"),
    ("auth without domain", {"domain": None}, "domain", "required when authEnabled"),
    ("auth with client config", {"allowClientSessionConfig": True}, "allowClientSessionConfig", "must be false"),
    ("auth with no agents and no session config", {"agentIds": []}, "agentIds", "sessionConfig is unset"),
    ("zero rate", {"rateLimit": {"requestsPerMinute": 0}}, "rateLimit.requestsPerMinute", "positive"),
    ("rate over Armor's ban ceiling", {"rateLimit": {"requestsPerMinute": 10001}}, "rateLimit.requestsPerMinute",
     "between 1 and 10000"),
    ("negative ban", {"rateLimit": {"banSeconds": -5}}, "rateLimit.banSeconds", "positive"),
    ("unknown rate field", {"rateLimit": {"perMinute": 5}}, "rateLimit", "unknown field"),
    ("zero max instances", {"maxInstances": 0}, "maxInstances", "positive"),
    ("negative min instances", {"minInstances": -1}, "minInstances", "at least 0"),
    ("min above max", {"minInstances": 5, "maxInstances": 2}, "minInstances", "above maxInstances"),
    ("zero concurrency", {"concurrency": 0}, "concurrency", "positive"),
    ("session config string", {"sessionConfig": "be nice"}, "sessionConfig", "must be an object"),
    ("session config list", {"sessionConfig": ["a"]}, "sessionConfig", "must be an object"),
    ("bad agent id", {"agentIds": ["agent one"]}, "agentIds", "not an agent id"),
    ("bad memory", {"memory": "lots"}, "memory", "256Mi"),
    ("http api base", {"outspeedApiBase": "http://api.outspeed.com"}, "outspeedApiBase", "https://"),
    ("non-bool auth", {"authEnabled": "yes"}, "authEnabled", "true or false"),
]


@pytest.mark.parametrize("label,change,key,phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_the_key_and_the_fix(label, change, key, phrase):
    with pytest.raises(ConfigError) as info:
        prod_with(**change)
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"config outspeed-token:{key}: ")
    assert phrase in message
    assert "Fix: " in message and message.split("Fix: ", 1)[1].strip()


def test_session_config_alone_satisfies_prod_without_agent_ids():
    s = prod_with(agentIds=[], sessionConfig={"model": "m", "instructions": "be brief"})
    assert s.agent_ids == () and s.session_config == {"model": "m", "instructions": "be brief"}


def test_dev_may_allow_client_session_config_and_skip_domain_and_agents():
    s = parse_mapping({"authEnabled": False, "allowClientSessionConfig": True})
    assert s.allow_client_session_config and not s.edge_enabled and s.domain == ""


def _hostname_warnings(s):
    # monitoring's own: tests/monitoring; the spend ceiling's: tests/infra/test_infra_quotas.py
    return [w for w in s.warnings if "monitoring" not in w and ":quotas " not in w]


def test_prod_with_empty_allowlist_is_legal_but_warns():
    assert _hostname_warnings(prod_with()) == []
    warned = _hostname_warnings(prod_with(allowedHostnames=[]))
    assert len(warned) == 1 and "allowedHostnames" in warned[0]
    assert _hostname_warnings(parse_mapping({"authEnabled": False})) == []  # dev: empty = any, no warning


# --- settings -> function environment -----------------------------------------------------------

def test_function_environment_matches_the_design_contract():
    s = prod_with(concurrency=16, sessionConfig={"voice": "alloy", "model": "m"},
                  allowedHostnames=["app.example.com", "www.example.com"], agentIds=["a-1", "b.2"])
    env = function_environment(s, "my-project")
    assert env == {
        "ALLOWED_AGENT_IDS": "a-1,b.2",
        "ALLOWED_HOSTNAMES": "app.example.com,www.example.com",
        "ALLOW_ANY_AGENT": "false",
        "ALLOW_CLIENT_SESSION_CONFIG": "false",
        "AUTH_ID_TOKEN_AUDIENCE": "my-project",
        "AUTH_ID_TOKEN_ISSUER": ISSUER,
        "GOOGLE_CLOUD_PROJECT": "my-project",
        "HTTPS_ORIGINS_ONLY": "true",
        "OUTSPEED_API_BASE": "https://api.outspeed.com",
        "SESSION_CONFIG": json.dumps({"model": "m", "voice": "alloy"}, separators=(",", ":")),
        "THREADS": "16",
        "UPSTREAM_TIMEOUT_SECONDS": "10",
        "FUNCTION_USE_ASGI": "true",  # the async server (functions-framework's ASGI mode)
        "FORWARDED_ALLOW_IPS": "",    # no trusted proxy: remoteIp is the TCP peer
        "LOG_EXECUTION_ID": "false",  # over Cloud Functions' default true: requests take DirectApp
    }
    assert "OUTSPEED_API_KEY" not in env


def test_dev_environment_leaves_empty_lists_unset_and_allows_http_origins():
    env = function_environment(parse_mapping({"authEnabled": False, "allowClientSessionConfig": True}), "p")
    assert "ALLOWED_HOSTNAMES" not in env and "ALLOWED_AGENT_IDS" not in env and "SESSION_CONFIG" not in env
    assert env["HTTPS_ORIGINS_ONLY"] == "false" and env["ALLOW_CLIENT_SESSION_CONFIG"] == "true"
    assert env["ALLOW_ANY_AGENT"] == "true"  # dev: an empty agentIds keeps meaning any agent


@pytest.mark.parametrize("auth", [True, False])
def test_allow_any_agent_follows_auth_enabled_and_is_always_set(auth):
    values = {**PROD_OK, "agentIds": [], "sessionConfig": {"model": "m"}, "authEnabled": auth}
    env = function_environment(parse_mapping(values), "p")
    assert env["ALLOW_ANY_AGENT"] == ("false" if auth else "true")
    with_agents = function_environment(parse_mapping({**values, "agentIds": ["a-1"]}), "p")
    assert with_agents["ALLOW_ANY_AGENT"] == env["ALLOW_ANY_AGENT"]  # set whether or not the list is empty
