"""The contract between the two worlds (DESIGN.md, "Function environment"): the environment
the infra derives from each stack file must be one the function accepts at cold start, and
must mean to the function what the stack config says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from outspeed_token import stackfiles
from outspeed_token.settings import function_environment, parse_mapping

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "function"))
import token_policy  # noqa: E402
import token_settings  # noqa: E402  (the function's own settings module, as deployed)

PROJECT = "demo-project"


def _function_settings(values: dict):
    infra = parse_mapping(values)
    env = function_environment(infra, PROJECT)
    # The secret is bound by Secret Manager at run time; here a stand-in value.
    return infra, token_settings.from_env({**env, "OUTSPEED_API_KEY": "contract-test-key"})


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_file_yields_an_environment_the_function_accepts(stack):
    values = stackfiles.project_values(stackfiles.stack_config(stack))
    infra, fn = _function_settings(values)
    assert fn.allowed_hostnames == frozenset(infra.allowed_hostnames)
    assert fn.allowed_agent_ids == frozenset(infra.agent_ids)
    assert fn.allow_any_agent is (not infra.auth_enabled)
    assert fn.https_origins_only is infra.auth_enabled  # prod refuses http origins
    assert fn.allow_client_session_config is infra.allow_client_session_config
    assert fn.threads == infra.concurrency  # one request per thread, as Cloud Run sends them
    assert fn.api_base == infra.api_base
    assert fn.project == PROJECT
    assert fn.api_key == "contract-test-key"


def test_server_side_session_config_arrives_intact():
    config = {"model": "outspeed-v1", "instructions": "Be brief, “kind” & clear.", "temperature": 0.5,
              "turn_detection": {"type": "semantic_vad"}, "tools": [{"name": "lookup"}]}
    values = {**stackfiles.project_values(stackfiles.stack_config("prod")), "sessionConfig": config}
    _, fn = _function_settings(values)
    assert json.loads(json.dumps(dict(fn.session_config))) == config


def test_empty_lists_mean_any_on_both_sides():
    values = {**stackfiles.project_values(stackfiles.stack_config("dev")), "allowedHostnames": [], "agentIds": []}
    _, fn = _function_settings(values)
    assert fn.allowed_hostnames == frozenset() and fn.allowed_agent_ids == frozenset()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_stack_runs_the_async_server_and_local_runs_match_it(stack):
    """The deployed function is served by functions-framework's ASGI mode, and the local
    server (tests, make run, make bench) runs with exactly the same server settings."""
    from tools.function_server import FunctionServer
    values = stackfiles.project_values(stackfiles.stack_config(stack))
    env = function_environment(parse_mapping(values), PROJECT)
    assert env["FUNCTION_USE_ASGI"] == "true"
    assert env["FORWARDED_ALLOW_IPS"] == ""  # the log's remoteIp is the TCP peer, never a header
    local = FunctionServer().env
    assert {k: local[k] for k in ("FUNCTION_USE_ASGI", "FORWARDED_ALLOW_IPS")} == \
        {k: env[k] for k in ("FUNCTION_USE_ASGI", "FORWARDED_ALLOW_IPS")}


def test_prod_with_session_config_and_no_agents_refuses_every_client_agent():
    # Issue 9 #1: empty agentIds in prod means "no agent flow", not "any agent".
    values = {**stackfiles.project_values(stackfiles.stack_config("prod")), "agentIds": [],
              "sessionConfig": {"model": "outspeed-v1"}}
    _, fn = _function_settings(values)
    assert fn.allowed_agent_ids == frozenset() and fn.allow_any_agent is False
    refused = token_policy.plan({"agentId": "someone-elses-agent"}, fn)
    assert isinstance(refused, token_policy.Rejection) and refused.code == "agent_not_allowed"
    served = token_policy.plan({"source": "web"}, fn)  # the programmatic flow still works
    assert isinstance(served, token_policy.UpstreamCall) and served.agent_id is None
    assert json.loads(served.body) == {"model": "outspeed-v1"}


def test_dev_with_no_agents_still_serves_any_agent():
    values = {**stackfiles.project_values(stackfiles.stack_config("dev")), "agentIds": []}
    _, fn = _function_settings(values)
    assert fn.allow_any_agent is True
    assert token_policy.plan({"agentId": "any-agent"}, fn).agent_id == "any-agent"


def test_caller_auth_reaches_the_function_as_the_design_variables():
    # DESIGN.md names the variables; the function reads them (or, before it verifies callers,
    # ignores them): either way the environment must start the function.
    values = {**stackfiles.project_values(stackfiles.stack_config("prod")), "callerAuth": {
        "idToken": {"issuer": "https://issuer.example.com/", "audience": "aud-1",
                    "jwksUri": "https://issuer.example.com/keys"},
        "appCheck": {"projectNumber": "123456789012", "appIds": ["1:123456789012:web:ab", "1:123456789012:ios:cd"]}}}
    infra = parse_mapping(values)
    env = function_environment(infra, PROJECT)
    assert {k: v for k, v in env.items() if k.startswith("AUTH_")} == {
        "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com/",
        "AUTH_ID_TOKEN_AUDIENCE": "aud-1",
        "AUTH_ID_TOKEN_JWKS_URI": "https://issuer.example.com/keys",
        "AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012",
        "AUTH_APP_CHECK_APP_IDS": "1:123456789012:web:ab,1:123456789012:ios:cd",
    }
    token_settings.from_env({**env, "OUTSPEED_API_KEY": "contract-test-key"})  # starts: no SettingsError


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_files_caller_checks_start_the_function(stack):
    values = stackfiles.project_values(stackfiles.stack_config(stack))
    infra, _ = _function_settings(values)  # from_env raised nothing
    env = function_environment(infra, PROJECT)
    assert ("AUTH_ID_TOKEN_ISSUER" in env or "AUTH_APP_CHECK_PROJECT_NUMBER" in env) is \
        infra.caller_auth.verifies_callers
    if infra.auth_enabled:  # prod verifies callers unless it says anonymous out loud
        assert infra.caller_auth.verifies_callers or infra.caller_auth.anonymous


def test_the_spend_ceiling_reaches_the_function_as_the_design_variables():
    """quotas + allowAnonymous -> QUOTA_* / AUTH_ID_TOKEN_ALLOW_ANONYMOUS, plus what the infra
    binds besides the plain environment (the secret URL, Memorystore's CA): the function starts
    with them and, where it enforces budgets, reads the same budgets and namespace."""
    values = {**stackfiles.project_values(stackfiles.stack_config("prod")),
              "callerAuth": {"idToken": {"issuer": "https://securetoken.google.com/p", "audience": "p",
                                         "allowAnonymous": True}},
              "quotas": {"perCaller": [{"count": 5, "windowSeconds": 3600}, {"count": 20, "windowSeconds": 86400}],
                         "global": [{"count": 500, "windowSeconds": 3600}], "store": "memorystore", "failOpen": True}}
    infra = parse_mapping(values)
    env = function_environment(infra, PROJECT, key_prefix="outspeed-token-prod")
    assert {k: v for k, v in env.items() if k.startswith(("QUOTA_", "AUTH_ID_TOKEN_ALLOW"))} == {
        "QUOTA_PER_CALLER": "5/3600,20/86400", "QUOTA_GLOBAL": "500/3600", "QUOTA_FAIL_OPEN": "true",
        "QUOTA_KEY_PREFIX": "outspeed-token-prod", "AUTH_ID_TOKEN_ALLOW_ANONYMOUS": "true"}
    from tools.plan import PLAN_REDIS_CA
    bound = {"OUTSPEED_API_KEY": "contract-test-key", "QUOTA_REDIS_URL": "rediss://:pw@10.8.1.3:6378",
             "QUOTA_REDIS_CA_CERT": PLAN_REDIS_CA}
    fn = token_settings.from_env({**env, **bound})  # starts: no SettingsError
    quotas = getattr(fn, "quotas", None)
    if quotas is not None:  # the function side's parser (issue 15) reads them
        assert [(w.count, w.seconds) for w in quotas.per_caller] == [(5, 3600), (20, 86400)]
        assert [(w.count, w.seconds) for w in quotas.global_] == [(500, 3600)]
        assert quotas.fail_open is True and quotas.key_prefix == "outspeed-token-prod"
        assert quotas.store.tls and quotas.store.ca_cert.strip() == PLAN_REDIS_CA.strip()
