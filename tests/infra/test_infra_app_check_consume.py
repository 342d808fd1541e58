"""`callerAuth.appCheck.consume` (issue 16, App Check replay protection): validation, the one
environment variable it sets, and under mocks the real program's grant and API: both only
with consume on, the role exactly App Check's token verifier, for the runtime account only."""
from __future__ import annotations

import pytest

from outspeed_token.settings import ConfigError, function_environment, parse_mapping
from infra_helpers import of_type, one, run
from tools.plan import PLACEHOLDER_PROJECT

PROD_OK = {"authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
           "allowedHostnames": ["app.example.com"]}
APP_CHECK = {"projectNumber": "123456789012"}
FUNCTION = "gcp:cloudfunctionsv2/function:Function"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
API = "gcp:projects/service:Service"
ACCOUNT = "gcp:serviceaccount/account:Account"
SLEEP = "time:index/sleep:Sleep"
VERIFIER = "roles/firebaseappcheck.tokenVerifier"


def env_of(app_check) -> dict[str, str]:
    return function_environment(parse_mapping({**PROD_OK, "callerAuth": {"appCheck": app_check}}), "p")


def test_consume_sets_only_its_switch():
    off, on = env_of(APP_CHECK), env_of({**APP_CHECK, "consume": True})
    assert "AUTH_APP_CHECK_CONSUME" not in off and env_of({**APP_CHECK, "consume": False}) == off
    # deployed, the API base and the metadata host keep the function's defaults (Google's)
    assert {k: v for k, v in on.items() if k not in off} == {"AUTH_APP_CHECK_CONSUME": "true"}
    assert env_of({**APP_CHECK, "consume": "true"}) == on  # `pulumi config set --path` writes a string


@pytest.mark.parametrize("caller_auth, key, phrase", [
    ({"appCheck": {**APP_CHECK, "consume": "yes"}}, "callerAuth.appCheck.consume", "true or false"),
    ({"appCheck": {**APP_CHECK, "consume": 1}}, "callerAuth.appCheck.consume", "true or false"),
    # consume needs App Check: it consumes App Check tokens
    ({"appCheck": {"consume": True}}, "callerAuth.appCheck.projectNumber", "digits only"),
    ({"idToken": {"issuer": "https://securetoken.google.com/p", "audience": "p"}, "consume": True},
     "callerAuth", "unknown field(s) consume"),
])
def test_bad_consume_config_names_the_key(caller_auth, key, phrase):
    with pytest.raises(ConfigError) as info:
        parse_mapping({**PROD_OK, "callerAuth": caller_auth})
    assert info.value.key == key and phrase in str(info.value)
    assert "pulumi config set --path callerAuth.appCheck.consume" in str(info.value) or key != "callerAuth.appCheck.consume"


def runtime_email(result) -> str:
    acct = next(a for a in of_type(result, ACCOUNT) if a["inputs"]["accountId"].endswith("-run"))
    return f"serviceAccount:{acct['inputs']['accountId']}@{PLACEHOLDER_PROJECT}.iam.gserviceaccount.com"


def test_the_program_grants_the_verifier_and_enables_the_api_only_with_consume():
    on = run("prod", {"callerAuth": {"appCheck": {**APP_CHECK, "consume": True}}})
    off = run("prod", {"callerAuth": {"appCheck": APP_CHECK}})
    assert on["error"] is None and off["error"] is None

    def verifier_grants(result):
        return [g for g in of_type(result, PROJECT_IAM) if g["inputs"]["member"] == runtime_email(result)]

    def apis(result):
        return {a["inputs"]["service"] for a in of_type(result, API)}

    (grant,) = verifier_grants(on)
    assert grant["inputs"] == {"project": PLACEHOLDER_PROJECT, "role": VERIFIER, "member": runtime_email(on)}
    assert verifier_grants(off) == []  # without consume the runtime account holds no project role
    assert not [g for g in of_type(on, PROJECT_IAM) + of_type(off, PROJECT_IAM)
                if "firebaseappcheck" in g["inputs"]["role"] and g["inputs"]["role"] != VERIFIER]
    assert apis(on) - apis(off) == {"firebaseappcheck.googleapis.com"}
    # the function waits for the grant (and for it to take effect) before it can serve
    assert grant["urn"] in one(on, FUNCTION)["dependencies"] and grant["urn"] in next(r for r in of_type(on, SLEEP) if r["name"] == "token-iam-settle")["dependencies"]
    env = one(on, FUNCTION)["inputs"]["serviceConfig"]["environmentVariables"]
    assert env["AUTH_APP_CHECK_CONSUME"] == "true" and env["AUTH_APP_CHECK_PROJECT_NUMBER"] == "123456789012"
    assert "AUTH_APP_CHECK_API_BASE" not in env and "GCE_METADATA_HOST" not in env
    assert "AUTH_APP_CHECK_CONSUME" not in one(off, FUNCTION)["inputs"]["serviceConfig"]["environmentVariables"]


def test_the_function_reads_the_environment_the_infra_sets():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "function"))
    import token_settings  # the function's own parser, as deployed
    env = {**env_of({**APP_CHECK, "consume": True}), "OUTSPEED_API_KEY": "contract-test-key"}
    check = token_settings.from_env(env).caller_auth.app_check
    assert check.consume is True
    assert (check.api_base, check.metadata_host) == ("https://firebaseappcheck.googleapis.com", "metadata.google.internal")
