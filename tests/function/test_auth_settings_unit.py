"""The AUTH_* variables (DESIGN.md, "Function environment"): parsed once, refused at start-up
when malformed, and what they switch on in the pure policy (preflight, exposed headers, errors)."""
from __future__ import annotations

import pytest

import token_policy
from token_settings import (DEFAULT_APP_CHECK_JWKS_URI, AppCheckCheck, CallerAuth, IdTokenCheck, Settings,
                            SettingsError, from_env)

ID = {"AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/my-project", "AUTH_ID_TOKEN_AUDIENCE": "my-project"}
APP = {"AUTH_APP_CHECK_PROJECT_NUMBER": "123456789012"}


def test_no_auth_variables_means_no_caller_checks():
    auth = from_env({}).caller_auth
    assert auth == CallerAuth() and not auth.enabled


def test_id_token_settings():
    auth = from_env(ID).caller_auth
    assert auth.id_token == IdTokenCheck("https://securetoken.google.com/my-project", "my-project", None)
    assert auth.id_token.discovery_url == "https://securetoken.google.com/my-project/.well-known/openid-configuration"
    assert auth.app_check is None and auth.enabled
    with_jwks = from_env({**ID, "AUTH_ID_TOKEN_JWKS_URI": "https://keys.example.com/jwks.json"}).caller_auth
    assert with_jwks.id_token.jwks_uri == "https://keys.example.com/jwks.json"
    # the OIDC rule: one trailing slash of the issuer is not doubled in the discovery URL
    assert IdTokenCheck("https://a.example.com/", "x").discovery_url == "https://a.example.com/.well-known/openid-configuration"


def test_app_check_settings():
    auth = from_env({**APP, "AUTH_APP_CHECK_APP_IDS": "1:123456789012:web:abc, 1:123456789012:ios:def"}).caller_auth
    assert auth.app_check == AppCheckCheck("123456789012", frozenset({"1:123456789012:web:abc", "1:123456789012:ios:def"}),
                                           DEFAULT_APP_CHECK_JWKS_URI)
    assert auth.app_check.issuer == "https://firebaseappcheck.googleapis.com/123456789012"
    assert auth.app_check.audience == "projects/123456789012"
    assert from_env(APP).caller_auth.app_check.app_ids == frozenset()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000", "https://x.example.com"])
def test_loopback_hosts_may_use_http(url):
    auth = from_env({**ID, "AUTH_ID_TOKEN_ISSUER": url, "AUTH_ID_TOKEN_JWKS_URI": url + "/jwks",
                     **APP, "AUTH_APP_CHECK_JWKS_URI": url + "/jwks"}).caller_auth
    assert auth.id_token.issuer == url and auth.app_check.jwks_uri == url + "/jwks"


@pytest.mark.parametrize("env, name", [
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "http://securetoken.google.com/p"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "securetoken.google.com/p"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com?x=1"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://u:p@issuer.example.com"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "http://127.0.0.1.nip.io"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com:99999"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_JWKS_URI": "http://keys.example.com/jwks"}, "AUTH_ID_TOKEN_JWKS_URI"),
    ({**ID, "AUTH_ID_TOKEN_JWKS_URI": "https://keys.example.com/jwks#frag"}, "AUTH_ID_TOKEN_JWKS_URI"),
    ({"AUTH_ID_TOKEN_ISSUER": ID["AUTH_ID_TOKEN_ISSUER"]}, "AUTH_ID_TOKEN_AUDIENCE"),
    ({**ID, "AUTH_ID_TOKEN_AUDIENCE": "has space"}, "AUTH_ID_TOKEN_AUDIENCE"),
    ({"AUTH_ID_TOKEN_AUDIENCE": "my-project"}, "AUTH_ID_TOKEN_AUDIENCE"),
    ({"AUTH_ID_TOKEN_JWKS_URI": "https://keys.example.com/jwks"}, "AUTH_ID_TOKEN_JWKS_URI"),
    ({"AUTH_APP_CHECK_PROJECT_NUMBER": "my-project"}, "AUTH_APP_CHECK_PROJECT_NUMBER"),
    ({"AUTH_APP_CHECK_PROJECT_NUMBER": "-12"}, "AUTH_APP_CHECK_PROJECT_NUMBER"),
    ({**APP, "AUTH_APP_CHECK_APP_IDS": "1:2:web:a,,1:2:web:b"}, "AUTH_APP_CHECK_APP_IDS"),
    ({**APP, "AUTH_APP_CHECK_APP_IDS": "app id with spaces"}, "AUTH_APP_CHECK_APP_IDS"),
    ({"AUTH_APP_CHECK_APP_IDS": "1:2:web:a"}, "AUTH_APP_CHECK_APP_IDS"),
    ({**APP, "AUTH_APP_CHECK_JWKS_URI": "http://firebaseappcheck.googleapis.com/v1/jwks"}, "AUTH_APP_CHECK_JWKS_URI"),
    # issue 18: checks that can never pass (token_rules, the same rules preview applies)
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://firebaseappcheck.googleapis.com/123456789012"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_AUDIENCE": "other-project"}, "AUTH_ID_TOKEN_AUDIENCE"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/my-project/"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**APP, "AUTH_APP_CHECK_APP_IDS": "1:123456789012:web:a,1:999:web:b"}, "AUTH_APP_CHECK_PROJECT_NUMBER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com:0"}, "AUTH_ID_TOKEN_ISSUER"),
    ({**ID, "AUTH_ID_TOKEN_ISSUER": "https://issuer.example.com/réalm"}, "AUTH_ID_TOKEN_ISSUER"),
])
def test_malformed_auth_settings_stop_the_start_naming_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        from_env(env)


def test_blank_auth_variables_mean_unset():
    blank = {name: " " for name in ("AUTH_ID_TOKEN_ISSUER", "AUTH_ID_TOKEN_AUDIENCE", "AUTH_ID_TOKEN_JWKS_URI",
                                    "AUTH_APP_CHECK_PROJECT_NUMBER", "AUTH_APP_CHECK_APP_IDS", "AUTH_APP_CHECK_JWKS_URI")}
    assert from_env(blank).caller_auth == CallerAuth()


def test_repr_shows_the_checks_and_still_never_the_key():
    s = from_env({**ID, **APP, "OUTSPEED_API_KEY": "sk-unit-secret-123"})
    assert "sk-unit-secret-123" not in repr(s)
    assert "securetoken.google.com/my-project" in repr(s) and "123456789012" in repr(s)


# ---- what the settings switch on in the pure policy ----------------------------------------

def _allow_headers(settings: Settings) -> str:
    return dict(token_policy.preflight_headers(settings))["Access-Control-Allow-Headers"]


def test_preflight_allows_the_credential_headers_of_the_checks_that_are_on():
    assert token_policy.preflight_headers(from_env({})) == token_policy.PREFLIGHT_HEADERS
    assert _allow_headers(from_env({})) == "Content-Type"
    assert _allow_headers(from_env(ID)) == "Content-Type, Authorization"
    assert _allow_headers(from_env(APP)) == "Content-Type, X-Firebase-AppCheck"
    assert _allow_headers(from_env({**ID, **APP})) == "Content-Type, Authorization, X-Firebase-AppCheck"
    headers = dict(token_policy.preflight_headers(from_env({**ID, **APP})))
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS" and int(headers["Access-Control-Max-Age"]) >= 600


@pytest.mark.parametrize("extra", [{}, {"ALLOWED_HOSTNAMES": "app.example.com"}, {"HTTPS_ORIGINS_ONLY": "true"}])
def test_www_authenticate_is_exposed_to_page_code_when_id_tokens_are_checked(extra):
    origin = "https://app.example.com"
    plain = dict(token_policy.decide_origin(origin, from_env(extra)).cors)
    assert plain["Access-Control-Expose-Headers"] == "Retry-After"
    decision = token_policy.decide_origin(origin, from_env({**extra, **ID}))
    assert decision.allowed
    cors = dict(decision.cors)
    assert cors["Access-Control-Expose-Headers"] == "Retry-After, WWW-Authenticate"
    assert {k: v for k, v in cors.items() if k != "Access-Control-Expose-Headers"} == \
        {k: v for k, v in plain.items() if k != "Access-Control-Expose-Headers"}
    # a refused origin stays refused, with no CORS grant
    refused = token_policy.decide_origin("https://evil.example.com", from_env({"ALLOWED_HOSTNAMES": "app.example.com", **ID}))
    assert not refused.allowed and "Access-Control-Allow-Origin" not in dict(refused.cors)


def test_the_new_errors():
    assert token_policy.ERRORS["unauthenticated"][0] == 401
    assert token_policy.ERRORS["app_check_failed"][0] == 401
    assert token_policy.ERRORS["auth_unavailable"][0] == 503
    assert dict(token_policy.UNAUTHENTICATED.headers) == {"WWW-Authenticate": 'Bearer realm="outspeed-token"'}
    assert token_policy.UNAUTHENTICATED.status == 401
    assert dict(token_policy.auth_unavailable(5).headers) == {"Retry-After": "5"}
    assert dict(token_policy.auth_unavailable(0).headers) == {"Retry-After": "1"}
