"""The spend ceiling's pure parts (DESIGN.md, "Spend ceiling"): the QUOTA_* and
AUTH_ID_TOKEN_ALLOW_ANONYMOUS settings, the budget spec parser, window keys and the store's
answer read back, and the anonymous-caller decision. The store itself is exercised for real in
test_server_quota.py."""
from __future__ import annotations

import asyncio
import json

import pytest

import token_auth
import token_quota
from token_caller import Authenticator, Caller, Denied
from token_settings import RedisTarget, SettingsError, Window, from_env, parse_windows
from token_upstream import Fetched
from tools.demo_issuer import DemoIssuer

ID = {"AUTH_ID_TOKEN_ISSUER": "https://securetoken.google.com/my-project", "AUTH_ID_TOKEN_AUDIENCE": "my-project"}
PASSWORD = "pw-Zq8/x@y:secret"
URL = "rediss://:pw-Zq8%2Fx%40y%3Asecret@10.0.0.3:6378/1"


# ---- budgets -----------------------------------------------------------------------------

def test_the_spec_parser():
    assert parse_windows("5/3600") == (Window(5, 3600),)
    assert parse_windows(" 5/3600 , 20/86400") == (Window(5, 3600), Window(20, 86400))


@pytest.mark.parametrize("spec, problem", [
    ("ten/60", "not COUNT/SECONDS"), ("0/60", "COUNT must be from 1"), ("5/0", "SECONDS must be from 1"),
    ("5/60,", "empty entry"), (",5/60", "empty entry"), ("5/60,,6/120", "empty entry"), ("5", "not COUNT/SECONDS"),
    ("5/60/2", "not COUNT/SECONDS"), ("-1/60", "not COUNT/SECONDS"), ("5/60,7/60", "two budgets for a window of 60"),
    ("5/99999999", "SECONDS must be from 1"), ("1.5/60", "not COUNT/SECONDS"),
])
def test_bad_specs_stop_the_cold_start_naming_the_variable(spec, problem):
    with pytest.raises(ValueError, match=problem):
        parse_windows(spec)
    for name, extra in (("QUOTA_GLOBAL", {}), ("QUOTA_PER_CALLER", ID)):
        with pytest.raises(SettingsError, match=problem) as error:
            from_env({**extra, "QUOTA_REDIS_URL": "redis://127.0.0.1:6379", name: spec})
        assert str(error.value).startswith(name)


def test_the_settings_of_a_full_config():
    quotas = from_env({**ID, "QUOTA_REDIS_URL": URL, "QUOTA_PER_CALLER": "5/3600,20/86400", "QUOTA_GLOBAL": "500/3600",
                       "QUOTA_FAIL_OPEN": "true", "QUOTA_KEY_PREFIX": "tok-prod",
                       "QUOTA_REDIS_CA_CERT": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}).quotas
    assert quotas.per_caller == (Window(5, 3600), Window(20, 86400)) and quotas.global_ == (Window(500, 3600),)
    assert quotas.fail_open and quotas.key_prefix == "tok-prod"
    store = quotas.store
    assert (store.tls, store.host, store.port, store.db, store.password) == (True, "10.0.0.3", 6378, 1, PASSWORD)
    assert store.ca_cert.startswith("-----BEGIN")
    defaults = from_env({"QUOTA_REDIS_URL": "redis://localhost", "QUOTA_GLOBAL": "3/60"}).quotas
    assert (defaults.fail_open, defaults.key_prefix, defaults.store.port, defaults.store.db) == (False, "outspeed-token", 6379, 0)
    assert from_env({}).quotas is None


@pytest.mark.parametrize("env, name", [
    ({"QUOTA_GLOBAL": "3/60"}, "QUOTA_GLOBAL"),  # budgets without a store
    ({**ID, "QUOTA_PER_CALLER": "3/60"}, "QUOTA_PER_CALLER"),
    ({"QUOTA_REDIS_URL": "redis://127.0.0.1:6379", "QUOTA_PER_CALLER": "3/60"}, "QUOTA_PER_CALLER"),  # no ID tokens
    ({"QUOTA_REDIS_URL": "redis://127.0.0.1:6379"}, "QUOTA_REDIS_URL"),  # a store and no budget
    ({"QUOTA_REDIS_URL": "redis://10.0.0.3:6379", "QUOTA_GLOBAL": "3/60"}, "QUOTA_REDIS_URL"),  # clear text off loopback
    ({"QUOTA_REDIS_URL": "https://10.0.0.3:6379", "QUOTA_GLOBAL": "3/60"}, "QUOTA_REDIS_URL"),
    ({"QUOTA_REDIS_URL": "rediss://10.0.0.3:6379/99", "QUOTA_GLOBAL": "3/60"}, "QUOTA_REDIS_URL"),
    ({"QUOTA_REDIS_URL": "rediss://10.0.0.3:6379?x=1", "QUOTA_GLOBAL": "3/60"}, "QUOTA_REDIS_URL"),
    ({"QUOTA_REDIS_URL": "rediss://10.0.0.3:6379", "QUOTA_GLOBAL": "3/60", "QUOTA_FAIL_OPEN": "yes"}, "QUOTA_FAIL_OPEN"),
    ({"QUOTA_REDIS_URL": "rediss://10.0.0.3:6379", "QUOTA_GLOBAL": "3/60", "QUOTA_KEY_PREFIX": "a b"}, "QUOTA_KEY_PREFIX"),
    ({"QUOTA_REDIS_URL": "rediss://10.0.0.3:6379", "QUOTA_GLOBAL": "3/60", "QUOTA_REDIS_CA_CERT": "not pem"},
     "QUOTA_REDIS_CA_CERT"),
    ({"QUOTA_REDIS_CA_CERT": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"}, "QUOTA_REDIS_CA_CERT"),
    ({"AUTH_ID_TOKEN_ALLOW_ANONYMOUS": "true"}, "AUTH_ID_TOKEN_ALLOW_ANONYMOUS"),  # without an issuer
    ({**ID, "AUTH_ID_TOKEN_ALLOW_ANONYMOUS": "maybe"}, "AUTH_ID_TOKEN_ALLOW_ANONYMOUS"),
])
def test_half_or_wrong_configs_are_cold_start_errors(env, name):
    with pytest.raises(SettingsError, match=name):
        from_env(env)


@pytest.mark.parametrize("url", [
    "redis://:{pw}@10.0.0.3:6379",  # clear text off loopback
    "rediss://:{pw}@10.0.0.3:6379/99", "rediss://:{pw}@10.0.0.3:port", "rediss://:{pw}@10.0.0.3:6379?tls=1",
    "http://:{pw}@10.0.0.3", "rediss://:{pw}@[::1", "rediss://:{pw}@:6379",
])
def test_the_store_password_is_never_in_an_error_or_a_repr(url):
    with pytest.raises(SettingsError) as error:
        from_env({"QUOTA_REDIS_URL": url.format(pw=PASSWORD), "QUOTA_GLOBAL": "3/60"})
    message = str(error.value)
    assert message.startswith("QUOTA_REDIS_URL")
    for part in (PASSWORD, "pw-Zq8", "secret"):
        assert part not in message, message
    settings = from_env({**ID, "QUOTA_REDIS_URL": URL, "QUOTA_GLOBAL": "3/60"})
    for text in (repr(settings), str(settings), repr(settings.quotas), repr(settings.quotas.store)):
        assert "pw-Zq8" not in text and "secret" not in text, text


# ---- windows and keys --------------------------------------------------------------------

def quotas(per_caller="2/60,5/3600", global_="100/60"):
    return from_env({**ID, "QUOTA_REDIS_URL": "redis://127.0.0.1:6379", "QUOTA_PER_CALLER": per_caller,
                     "QUOTA_GLOBAL": global_, "QUOTA_KEY_PREFIX": "tok"}).quotas


def test_windows_are_aligned_to_the_epoch_and_keys_never_hold_the_subject():
    now = 7200.0 + 59.25  # 59.25 s into a minute, 59.25 s into an hour
    plan = token_quota.plan(quotas(), "alice@example.com", now)
    assert [slot.budget for slot in plan.slots] == ["caller", "caller", "global"]
    assert [slot.limit for slot in plan.slots] == [2, 5, 100]
    assert [slot.reset_in for slot in plan.slots] == [1, 3541, 1]
    assert all(slot.ttl > slot.reset_in for slot in plan.slots)  # a key outlives its window, then goes
    caller = token_quota.subject_id("alice@example.com")
    assert plan.keys == [f"tok:quota:caller:{caller}:60:120", f"tok:quota:caller:{caller}:3600:2", "tok:quota:global:60:120"]
    assert all("alice" not in key for key in plan.keys)
    assert plan.args() == [2, 5, 100] + [slot.ttl for slot in plan.slots]
    # the next window is another key; another caller another hash
    assert token_quota.plan(quotas(), "alice@example.com", 7260.0).keys[0] == f"tok:quota:caller:{caller}:60:121"
    assert token_quota.subject_id("bob") != caller and len(caller) == 32
    # no subject (no ID-token check): the global windows only
    assert [slot.budget for slot in token_quota.plan(quotas(per_caller=""), None, now).slots] == ["global"]


def test_the_store_answer_read_back():
    plan = token_quota.plan(quotas(), "u", 7200.0 + 59.25)
    assert token_quota.decide(plan, []) is None
    refused = token_quota.decide(plan, [3])
    assert (refused.budget, refused.retry_after) == ("global", 1)
    # several windows refuse: the caller's budget is named, the longest wait is the answer
    refused = token_quota.decide(plan, [1, 2, 3])
    assert (refused.budget, refused.retry_after) == ("caller", 3541)
    assert refused.rejection.code == "quota_exceeded" and dict(refused.rejection.headers) == {"Retry-After": "3541"}
    assert token_quota.UNAVAILABLE.status == 503 and dict(token_quota.UNAVAILABLE.headers)["Retry-After"] == "5"


# ---- anonymous callers -------------------------------------------------------------------

def test_the_anonymous_claim():
    assert token_auth.is_anonymous({"firebase": {"sign_in_provider": "anonymous"}})
    for claims in ({}, {"firebase": {"sign_in_provider": "password"}}, {"firebase": "anonymous"},
                   {"sign_in_provider": "anonymous"}, {"firebase": {"sign_in_provider": ["anonymous"]}}):
        assert not token_auth.is_anonymous(claims), claims


@pytest.fixture(scope="module")
def issuer():
    issuer = DemoIssuer()  # not started: keys and signing in-process
    yield issuer
    issuer.server.server_close()


def _check(issuer, token: str, **env):
    async def fetch(url, *, timeout, max_bytes):
        body = {"issuer": issuer.issuer, "jwks_uri": issuer.jwks_uri} if url.endswith("configuration") else issuer.jwks()
        return Fetched(200, {}, json.dumps(body).encode())
    settings = from_env({"AUTH_ID_TOKEN_ISSUER": issuer.issuer, "AUTH_ID_TOKEN_AUDIENCE": issuer.audience, **env})
    return asyncio.run(Authenticator(settings.caller_auth, fetch).check("Bearer " + token, None))


def test_anonymous_users_are_refused_unless_allowed(issuer):
    anonymous = issuer.id_token(sub="anon-1", firebase={"sign_in_provider": "anonymous", "identities": {}})
    refused = _check(issuer, anonymous)
    assert isinstance(refused, Denied) and refused.rejection.code == "anonymous_not_allowed"
    assert refused.rejection.status == 403 and refused.reason == "id_token: anonymous"
    assert _check(issuer, anonymous, AUTH_ID_TOKEN_ALLOW_ANONYMOUS="true") == Caller("anon-1", None)
    # a signed-in Firebase user, and a token of another issuer (no firebase claim), pass
    assert _check(issuer, issuer.id_token(sub="u", firebase={"sign_in_provider": "google.com"})) == Caller("u", None)
    assert _check(issuer, issuer.id_token(sub="v")) == Caller("v", None)
    # an expired anonymous token is unauthenticated first: anonymity is judged only once verified
    expired = issuer.id_token(sub="anon-2", lifetime=-3600, firebase={"sign_in_provider": "anonymous"})
    assert _check(issuer, expired).rejection.code == "unauthenticated"
