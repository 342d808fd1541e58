"""The environment a deployed function really runs with: what the program plans, over what the
platform injects. Cloud Functions sets LOG_EXECUTION_ID=true in 2nd-gen functions, which would send
every request down the framework's per-request wrapper instead of DirectApp (function/main.py)."""
from __future__ import annotations

import json
import secrets

import pytest
import requests

from tools.function_server import FunctionServer

# What the platform sets in a 2nd-gen function's environment by default (the part that matters here).
PLATFORM_DEFAULTS = {"LOG_EXECUTION_ID": "true"}


def _planned_env(run) -> dict[str, str]:
    (fn,) = [r for r in run["resources"] if r["type"] == "gcp:cloudfunctionsv2/function:Function"]
    return fn["inputs"]["serviceConfig"]["environmentVariables"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_stack_turns_execution_id_logging_off_explicitly(stack_runs, stack):
    assert _planned_env(stack_runs[stack])["LOG_EXECUTION_ID"] == "false"


def _labels_of_a_request(env: dict[str, str]) -> dict:
    """Serve with `env`, send one request carrying an execution id, return its log line's labels.
    A 404 path: answered before any upstream or key fetch, so nothing leaves loopback."""
    env = {**env, "OUTSPEED_API_KEY": "deployed-env-test-key", "OUTSPEED_API_BASE": "http://127.0.0.1:9"}
    ua = "ua-" + secrets.token_hex(6)
    with FunctionServer(env) as fn:
        r = requests.get(fn.url + "/not-here", headers={"User-Agent": ua, "Function-Execution-Id": "exec-7"}, timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        lines = [json.loads(line) for line in fn.output().splitlines() if ua in line]
    assert len(lines) == 1, lines
    return lines[0].get("logging.googleapis.com/labels", {})


def test_the_deployed_environment_serves_through_direct_app(stack_runs):
    planned = _planned_env(stack_runs["dev"])
    deployed = {**PLATFORM_DEFAULTS, **planned}  # the function's own variables win over the defaults
    assert "execution_id" not in _labels_of_a_request(deployed)
    # Control: without the explicit false, the platform's default takes the framework's route,
    # whose wrapper labels the line with the execution id (so the check above can fail).
    without = {k: v for k, v in deployed.items() if not (k == "LOG_EXECUTION_ID" and k in planned)}
    without.update(PLATFORM_DEFAULTS)
    assert _labels_of_a_request(without).get("execution_id") == "exec-7"
