"""Issue 9 #1: with ALLOW_ANY_AGENT false (prod), an empty ALLOWED_AGENT_IDS means "no agent
flow": any client agentId gets 403 agent_not_allowed, while the programmatic SESSION_CONFIG flow
still mints. Unit (settings, policy) and a real functions-framework server whose environment is
the one the infra derives from a prod stack with sessionConfig and no agentIds."""
from __future__ import annotations

import pytest

from function_helpers import API_KEY, SESSION_CONFIG, error_of
from outspeed_token import stackfiles
from outspeed_token.settings import function_environment, parse_mapping
from token_policy import Rejection, UpstreamCall, plan
from token_settings import Settings, SettingsError, from_env
from tools.demo_issuer import DemoIssuer
from tools.function_server import FunctionServer

CONFIG = {"model": "outspeed-v1"}


# ---- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [(None, True), ("", True), ("true", True), ("TRUE", True),
                                           ("false", False), (" False ", False)])
def test_allow_any_agent_parses_and_defaults_to_true(raw, expected):
    env = {} if raw is None else {"ALLOW_ANY_AGENT": raw}
    assert from_env(env).allow_any_agent is expected


@pytest.mark.parametrize("raw", ["no", "0", "1", "yes", "flase"])
def test_malformed_allow_any_agent_stops_start_up_naming_it(raw):
    with pytest.raises(SettingsError, match="ALLOW_ANY_AGENT"):
        from_env({"ALLOW_ANY_AGENT": raw})


# ---- policy ----------------------------------------------------------------------------------

def test_empty_allowlist_with_allow_any_agent_false_refuses_every_client_agent():
    prod = Settings(session_config=CONFIG, allow_any_agent=False)
    assert plan({"agentId": "someone-elses-agent"}, prod) == Rejection("agent_not_allowed")
    assert plan({"agentId": "a", "source": "web"}, prod) == Rejection("agent_not_allowed")
    # The programmatic flow (no agentId) is what this endpoint serves.
    call = plan({}, prod)
    assert isinstance(call, UpstreamCall) and call.agent_id is None and call.body == b'{"model":"outspeed-v1"}'
    assert plan({"source": "web"}, prod).params == (("source", "web"),)


def test_format_checks_still_come_before_the_agent_policy():
    prod = Settings(session_config=CONFIG, allow_any_agent=False)
    assert plan({"agentId": "bad agent"}, prod) == Rejection("invalid_agent_id")


def test_allow_any_agent_true_keeps_the_dev_meaning_of_an_empty_list():
    dev = Settings(allow_any_agent=True)
    assert plan({"agentId": "any-agent"}, dev).agent_id == "any-agent"


def test_a_non_empty_allowlist_decides_whatever_allow_any_agent_says():
    for any_agent in (True, False):
        s = Settings(allowed_agent_ids=frozenset({"agent-1"}), allow_any_agent=any_agent)
        assert plan({"agentId": "agent-1"}, s).agent_id == "agent-1"
        assert plan({"agentId": "agent-2"}, s) == Rejection("agent_not_allowed")


# ---- the real server, configured by the infra from a prod stack --------------------------------

def prod_environment_with_session_config_and_no_agents(upstream_url: str, issuer: DemoIssuer) -> dict[str, str]:
    values = {**stackfiles.project_values(stackfiles.stack_config("prod")),
              "agentIds": [], "sessionConfig": SESSION_CONFIG}
    env = function_environment(parse_mapping(values), "proj-test")
    assert "AUTH_ID_TOKEN_ISSUER" in env  # the shipped prod stack verifies callers' ID tokens
    # Only the upstream and the ID-token issuer are local (loopback stand-ins for Outspeed and
    # the sign-in provider); everything else is exactly what prod deploys.
    return {**env, "OUTSPEED_API_BASE": upstream_url, "OUTSPEED_API_KEY": API_KEY, "THREADS": "4",
            "AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_JWKS_URI": issuer.jwks_uri}


@pytest.fixture(scope="module")
def issuer():
    with DemoIssuer(audience=parse_mapping(stackfiles.project_values(
            stackfiles.stack_config("prod"))).caller_auth.id_token.audience) as demo:
        yield demo


@pytest.fixture(scope="module")
def prod_server(upstream, issuer):
    server = FunctionServer(prod_environment_with_session_config_and_no_agents(upstream.url, issuer)).start()
    yield server
    server.stop()


def test_prod_server_refuses_a_client_agent_and_never_calls_outspeed(api, prod_server, issuer, fresh_upstream):
    hostname = parse_mapping(stackfiles.project_values(stackfiles.stack_config("prod"))).allowed_hostnames[0]
    # A signed-in caller (caller authentication passes) asking for someone else's agent.
    headers = {"Origin": f"https://{hostname}", "Authorization": f"Bearer {issuer.id_token(sub='user-1')}"}
    r = api.post(prod_server.url + "/token", {"agentId": "someone-elses-agent"}, headers=headers)
    assert r.status_code == 403 and error_of(r) == "agent_not_allowed"
    assert fresh_upstream.requests == []
    # The server-side sessionConfig flow still mints, with the server's config as the body.
    ok = api.post(prod_server.url + "/token", {}, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["client_secret"]["value"] == fresh_upstream.minted[-1]
    (sent,) = fresh_upstream.requests
    assert sent.query == {} and sent.body and b"server-instructions-" in sent.body
    output = prod_server.output()
    assert API_KEY not in output and fresh_upstream.minted[-1] not in output
