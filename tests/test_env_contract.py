"""The contract between the two worlds (DESIGN.md, "Function environment"): the environment
the infra derives from each stack file must be one the function accepts at cold start, and
must mean to the function what the stack config says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from infra import stackfiles
from infra.settings import function_environment, parse_mapping

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "function"))
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
