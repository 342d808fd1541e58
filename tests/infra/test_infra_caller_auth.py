"""Stack config `callerAuth` (issue 8 item 1): validation, warnings, the AUTH_* environment it
maps to (DESIGN.md "Function environment"), and the real program under mocks."""
from __future__ import annotations

import pytest

from outspeed_token import stackfiles
from outspeed_token.settings import AppCheckAuth, CallerAuth, ConfigError, IdTokenAuth, function_environment, parse_mapping
from infra_helpers import one, run

ISSUER = "https://securetoken.google.com/my-project"
ID_TOKEN = {"issuer": ISSUER, "audience": "my-project"}
PROD_OK = {"authEnabled": True, "domain": "token.example.com", "agentIds": ["agent-1"],
           "allowedHostnames": ["app.example.com"]}

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
AUTH_VARS = {"AUTH_ID_TOKEN_ISSUER", "AUTH_ID_TOKEN_AUDIENCE", "AUTH_ID_TOKEN_JWKS_URI",
             "AUTH_APP_CHECK_PROJECT_NUMBER", "AUTH_APP_CHECK_APP_IDS", "AUTH_APP_CHECK_JWKS_URI"}
APP_CHECK = {"projectNumber": "123456789012"}


def prod(caller_auth, **changes):
    return parse_mapping({**PROD_OK, "callerAuth": caller_auth, **changes})


def dev(caller_auth):
    return parse_mapping({"authEnabled": False, "callerAuth": caller_auth})


def auth_env(settings):
    return {k: v for k, v in function_environment(settings, "p").items() if k.startswith("AUTH_")}


# --- accepted shapes and their environment --------------------------------------------------------

def test_id_token_maps_to_issuer_and_audience_with_discovery():
    s = prod({"idToken": ID_TOKEN})
    assert s.caller_auth == CallerAuth(id_token=IdTokenAuth(ISSUER, "my-project"))
    assert auth_env(s) == {"AUTH_ID_TOKEN_ISSUER": ISSUER, "AUTH_ID_TOKEN_AUDIENCE": "my-project"}


@pytest.mark.parametrize("jwks", ["", None, "   "])
def test_an_empty_jwks_uri_means_discovery_and_is_left_unset(jwks):
    assert "AUTH_ID_TOKEN_JWKS_URI" not in auth_env(prod({"idToken": {**ID_TOKEN, "jwksUri": jwks}}))


def test_explicit_jwks_uri_is_passed_on():
    uri = "https://example.eu.auth0.com/.well-known/jwks.json"
    env = auth_env(prod({"idToken": {"issuer": "https://example.eu.auth0.com/", "audience": "https://api.example.com",
                                     "jwksUri": uri}}))
    assert env == {"AUTH_ID_TOKEN_ISSUER": "https://example.eu.auth0.com/",  # exact: iss compares exactly
                   "AUTH_ID_TOKEN_AUDIENCE": "https://api.example.com", "AUTH_ID_TOKEN_JWKS_URI": uri}


def test_app_check_alone_maps_to_the_project_number():
    s = prod({"appCheck": APP_CHECK})
    assert s.caller_auth.app_check == AppCheckAuth("123456789012", ())
    assert auth_env(s) == {"AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"}  # no app ids: any app


def test_app_check_app_ids_are_comma_separated_and_an_unquoted_number_is_accepted():
    env = auth_env(prod({"appCheck": {"projectNumber": 123456789012,
                                      "appIds": ["1:123456789012:web:0a1b", "1:123456789012:android:ff"]}}))
    assert env == {"AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012",
                   "AUTH_APP_CHECK_APP_IDS": "1:123456789012:web:0a1b,1:123456789012:android:ff"}


def test_both_checks_at_once():
    env = auth_env(prod({"idToken": ID_TOKEN, "appCheck": APP_CHECK}))
    assert set(env) == {"AUTH_ID_TOKEN_ISSUER", "AUTH_ID_TOKEN_AUDIENCE", "AUTH_APP_CHECK_PROJECT_NUMBER"}


def test_the_app_check_jwks_override_is_never_set_by_the_infra():
    env = auth_env(prod({"idToken": {**ID_TOKEN, "jwksUri": "https://x.example.com/jwks"}, "appCheck": APP_CHECK}))
    assert "AUTH_APP_CHECK_JWKS_URI" not in env and set(env) <= AUTH_VARS


def test_cli_json_strings_parse_like_yaml():
    s = prod('{"idToken": {"issuer": "%s", "audience": "my-project"}, "anonymous": "false"}' % ISSUER)
    assert s.caller_auth.id_token == IdTokenAuth(ISSUER, "my-project") and not s.caller_auth.anonymous


def caller_warnings(settings) -> list[str]:
    """The warnings about callers (monitoring adds its own "nobody is notified" one)."""
    return [w for w in settings.warnings if "callerAuth" in w]


def test_prod_anonymous_is_legal_sets_nothing_and_warns_naming_the_risk():
    s = prod({"anonymous": True})
    assert auth_env(s) == {}
    (warning,) = caller_warnings(s)
    assert "callerAuth.anonymous" in warning and "forges an Origin" in warning
    assert "rateLimit" in warning and "60 per minute" in warning
    assert caller_warnings(prod({"idToken": ID_TOKEN})) == []


@pytest.mark.parametrize("issuer, phrase", [
    ("https://acme.eu.auth0.com/", "ends with a slash"),
    ("https://Login.Example.com/tenant", "upper-case letters in its host"),
])
def test_issuers_that_are_usually_typos_warn_at_preview(issuer, phrase):
    # Legal (Auth0's issuer does end with a slash; `iss` is only ever compared exactly), so a
    # warning naming the key, not an error.
    (warning,) = caller_warnings(prod({"idToken": {"issuer": issuer, "audience": "https://api.example.com"}}))
    assert warning.startswith("outspeed-token:callerAuth.idToken.issuer ") and phrase in warning and issuer in warning
    assert caller_warnings(prod({"idToken": {"issuer": "https://login.example.com/tenant", "audience": "a"}})) == []


def test_dev_without_caller_auth_is_fine_and_sets_no_auth_variables():
    s = dev({})
    assert s.caller_auth == CallerAuth() and auth_env(s) == {} and caller_warnings(s) == []


def test_dev_enforces_caller_auth_exactly_as_prod_when_set():
    assert auth_env(dev({"idToken": ID_TOKEN})) == auth_env(prod({"idToken": ID_TOKEN}))
    with pytest.raises(ConfigError) as info:
        dev({"idToken": {"issuer": "http://issuer.example.com", "audience": "a"}})
    assert info.value.key == "callerAuth.idToken.issuer"


# --- refused: one error naming the key and the fix ----------------------------------------------

BAD = [
    ("prod without any check", {}, "callerAuth", "no caller check"),
    ("prod with anonymous false only", {"anonymous": False}, "callerAuth", "no caller check"),
    ("not an object", ["idToken"], "callerAuth", "must be an object"),
    ("unknown top key", {"idtoken": ID_TOKEN}, "callerAuth", "unknown field(s) idtoken"),
    ("id token not an object", {"idToken": "https://x"}, "callerAuth.idToken", "must be an object"),
    ("unknown id token key", {"idToken": {**ID_TOKEN, "aud": "x"}}, "callerAuth.idToken", "unknown field(s) aud"),
    ("missing issuer", {"idToken": {"audience": "a"}}, "callerAuth.idToken.issuer", "https URL"),
    ("http issuer", {"idToken": {**ID_TOKEN, "issuer": "http://securetoken.google.com/p"}},
     "callerAuth.idToken.issuer", "must be https"),
    ("loopback http issuer", {"idToken": {**ID_TOKEN, "issuer": "http://127.0.0.1:9000"}},
     "callerAuth.idToken.issuer", "cannot reach"),
    ("issuer without scheme", {"idToken": {**ID_TOKEN, "issuer": "securetoken.google.com/p"}},
     "callerAuth.idToken.issuer", "https URL"),
    ("issuer with query", {"idToken": {**ID_TOKEN, "issuer": "https://a.example.com/?x=1"}},
     "callerAuth.idToken.issuer", "without query"),
    ("issuer with credentials", {"idToken": {**ID_TOKEN, "issuer": "https://u:p@a.example.com"}},
     "callerAuth.idToken.issuer", "credentials"),
    ("missing audience", {"idToken": {"issuer": ISSUER}}, "callerAuth.idToken.audience", "non-empty"),
    ("blank audience", {"idToken": {**ID_TOKEN, "audience": "  "}}, "callerAuth.idToken.audience", "non-empty"),
    ("numeric audience", {"idToken": {**ID_TOKEN, "audience": 5}}, "callerAuth.idToken.audience", "non-empty"),
    ("http jwks", {"idToken": {**ID_TOKEN, "jwksUri": "http://a.example.com/jwks"}}, "callerAuth.idToken.jwksUri",
     "must be https"),
    ("app check not an object", {"appCheck": True}, "callerAuth.appCheck", "must be an object"),
    ("unknown app check key", {"appCheck": {**APP_CHECK, "appId": "x"}}, "callerAuth.appCheck",
     "unknown field(s) appId"),
    ("missing project number", {"appCheck": {}}, "callerAuth.appCheck.projectNumber", "digits only"),
    ("project id not number", {"appCheck": {"projectNumber": "my-project"}}, "callerAuth.appCheck.projectNumber",
     "digits only"),
    ("negative project number", {"appCheck": {"projectNumber": -5}}, "callerAuth.appCheck.projectNumber", "digits"),
    ("bool project number", {"appCheck": {"projectNumber": True}}, "callerAuth.appCheck.projectNumber", "digits"),
    ("app ids not a list", {"appCheck": {**APP_CHECK, "appIds": "1:1:web:a"}}, "callerAuth.appCheck.appIds",
     "list of strings"),
    ("app ids with a number", {"appCheck": {**APP_CHECK, "appIds": [1]}}, "callerAuth.appCheck.appIds",
     "list of strings"),
    ("app id with a comma", {"appCheck": {**APP_CHECK, "appIds": ["1:1:web:a,1:1:web:b"]}},
     "callerAuth.appCheck.appIds", "not a Firebase app id"),
    # issue 18 finding 6: what the function refused at cold start, preview refuses too
    ("issuer port out of range", {"idToken": {**ID_TOKEN, "issuer": "https://a.example.com:99999"}},
     "callerAuth.idToken.issuer", "port (1-65535)"),
    ("audience with a space", {"idToken": {"issuer": "https://a.example.com", "audience": "my project"}},
     "callerAuth.idToken.audience", "visible ASCII"),
    ("audience too long", {"idToken": {"issuer": "https://a.example.com", "audience": "a" * 513}},
     "callerAuth.idToken.audience", "1-512"),
    # issue 18 finding 7: issuers that can never verify a token
    ("App Check issuer as ID-token issuer",
     {"idToken": {**ID_TOKEN, "issuer": "https://firebaseappcheck.googleapis.com/123456789012"}},
     "callerAuth.idToken.issuer", "every visitor's App Check token would pass"),
    ("Firebase issuer of another project", {"idToken": {**ID_TOKEN, "audience": "other-project"}},
     "callerAuth.idToken", "can never both match"),
    ("Firebase issuer with a trailing slash", {"idToken": {**ID_TOKEN, "issuer": ISSUER + "/"}},
     "callerAuth.idToken", "no trailing slash"),
    ("Firebase issuer with an upper-case host",
     {"idToken": {**ID_TOKEN, "issuer": "https://SECURETOKEN.google.com/my-project"}},
     "callerAuth.idToken", "can never both match"),
    ("app id of another project number", {"appCheck": {**APP_CHECK, "appIds": ["1:999:web:ab"]}},
     "callerAuth.appCheck.appIds", "belongs to Firebase project number 999, not 123456789012"),
    ("anonymous not a bool", {"anonymous": "yes"}, "callerAuth.anonymous", "true or false"),
    ("anonymous with id token", {"anonymous": True, "idToken": ID_TOKEN}, "callerAuth.anonymous", "contradictory"),
    ("anonymous with app check", {"anonymous": True, "appCheck": APP_CHECK}, "callerAuth.anonymous",
     "contradictory"),
]


@pytest.mark.parametrize("label,caller_auth,key,phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_caller_auth_names_the_key_and_the_fix(label, caller_auth, key, phrase):
    with pytest.raises(ConfigError) as info:
        prod(caller_auth)
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"config outspeed-token:{key}: ") and phrase in message
    assert "Fix: " in message and message.split("Fix: ", 1)[1].strip()


# --- the shipped stack files and the real program -------------------------------------------------

def test_prod_stack_file_ships_a_firebase_id_token_example():
    s = parse_mapping(stackfiles.project_values(stackfiles.stack_config("prod")))
    token = s.caller_auth.id_token
    assert token is not None and s.caller_auth.app_check is None and not s.caller_auth.anonymous
    project_id = token.audience
    assert token.issuer == f"https://securetoken.google.com/{project_id}"  # Firebase's issuer shape


def test_dev_stack_file_sets_no_caller_check():
    assert parse_mapping(stackfiles.project_values(stackfiles.stack_config("dev"))).caller_auth == CallerAuth()


def test_program_maps_the_prod_stack_file_to_the_function_environment(prod):
    want = parse_mapping(stackfiles.project_values(stackfiles.stack_config("prod")))
    env = one(prod, FUNCTION)["inputs"]["serviceConfig"]["environmentVariables"]
    assert {k: v for k, v in env.items() if k.startswith("AUTH_")} == auth_env(want) != {}


def test_program_with_app_check_and_anonymous_cases():
    both = run("prod", {"callerAuth": {"idToken": ID_TOKEN, "appCheck": {**APP_CHECK, "appIds": ["1:123456789012:web:a"]}}})
    assert both["error"] is None
    env = one(both, FUNCTION)["inputs"]["serviceConfig"]["environmentVariables"]
    assert (env["AUTH_ID_TOKEN_ISSUER"], env["AUTH_APP_CHECK_PROJECT_NUMBER"], env["AUTH_APP_CHECK_APP_IDS"]) == \
        (ISSUER, "123456789012", "1:123456789012:web:a")
    anonymous = run("prod", {"callerAuth": {"anonymous": True}})
    assert anonymous["error"] is None
    assert not [k for k in one(anonymous, FUNCTION)["inputs"]["serviceConfig"]["environmentVariables"]
                if k.startswith("AUTH_")]
    assert any("callerAuth.anonymous" in w and "forges an Origin" in w for w in anonymous["warnings"])


@pytest.mark.parametrize("change,key", [
    ({"callerAuth": {}}, "callerAuth"),
    ({"callerAuth": {"idToken": {"issuer": "http://localhost:9000", "audience": "a"}}}, "callerAuth.idToken.issuer"),
    ({"callerAuth": {"anonymous": True, "appCheck": APP_CHECK}}, "callerAuth.anonymous"),
])
def test_program_refuses_bad_caller_auth_before_any_resource(change, key):
    result = run("prod", change)
    assert result["error"]["type"] == "ConfigError" and result["error"]["key"] == key
    assert result["resources"] == [] and result["exit_code"] == 2


def test_a_nested_boolean_error_tells_the_user_to_use_path():
    with pytest.raises(ConfigError) as info:
        prod({"anonymous": "maybe"})
    assert "pulumi config set --path callerAuth.anonymous true|false" in str(info.value)
