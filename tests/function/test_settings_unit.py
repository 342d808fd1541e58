"""token_settings.from_env: every variable's parsing and its start-up error (fast, in-process)."""
from __future__ import annotations

import pytest

from token_settings import DEFAULT_API_BASE, Settings, SettingsError, from_env

KEY = "sk-unit-0123456789abcdef"


def test_defaults_with_an_empty_environment():
    s = from_env({})
    assert s.api_key is None
    assert s.api_base == DEFAULT_API_BASE
    assert s.allowed_hostnames == frozenset() and s.allowed_agent_ids == frozenset()
    assert s.session_config is None
    assert s.allow_client_session_config is False and s.https_origins_only is False
    assert s.upstream_timeout == 10.0
    assert s.threads >= 1
    assert s.project is None


def test_a_full_environment():
    s = from_env({
        "OUTSPEED_API_KEY": f"  {KEY}\n", "OUTSPEED_API_BASE": "http://127.0.0.1:8081/",
        "ALLOWED_HOSTNAMES": " App.Example.com , localhost", "ALLOWED_AGENT_IDS": "agent-1,agent:2",
        "SESSION_CONFIG": '{"model": "outspeed-v1", "temperature": 0.5}',
        "ALLOW_CLIENT_SESSION_CONFIG": "TRUE", "HTTPS_ORIGINS_ONLY": "false",
        "UPSTREAM_TIMEOUT_SECONDS": "2.5", "THREADS": "80", "GOOGLE_CLOUD_PROJECT": "my-proj",
    })
    assert s.api_key == KEY
    assert s.api_base == "http://127.0.0.1:8081"
    assert s.allowed_hostnames == {"app.example.com", "localhost"}
    assert s.allowed_agent_ids == {"agent-1", "agent:2"}
    assert dict(s.session_config) == {"model": "outspeed-v1", "temperature": 0.5}
    assert s.allow_client_session_config is True and s.https_origins_only is False
    assert s.upstream_timeout == 2.5 and s.threads == 80 and s.project == "my-proj"


def test_settings_are_frozen_and_the_config_read_only():
    s = from_env({"SESSION_CONFIG": '{"model": "m"}'})
    with pytest.raises(AttributeError):
        s.api_key = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.session_config["model"] = "other"  # type: ignore[index]


def test_repr_never_shows_the_key():
    s = from_env({"OUTSPEED_API_KEY": KEY})
    assert KEY not in repr(s) and KEY not in str(s)
    assert "api_key=<set>" in repr(s)


@pytest.mark.parametrize("name, value", [
    ("SESSION_CONFIG", "[]"), ("SESSION_CONFIG", '"text"'), ("SESSION_CONFIG", "{"),
    ("SESSION_CONFIG", '{"t": NaN}'), ("SESSION_CONFIG", "null"),
    ("ALLOW_CLIENT_SESSION_CONFIG", "yes"), ("ALLOW_CLIENT_SESSION_CONFIG", "1"),
    ("HTTPS_ORIGINS_ONLY", "ture"),
    ("UPSTREAM_TIMEOUT_SECONDS", "abc"), ("UPSTREAM_TIMEOUT_SECONDS", "0"), ("UPSTREAM_TIMEOUT_SECONDS", "-3"),
    ("UPSTREAM_TIMEOUT_SECONDS", "inf"), ("UPSTREAM_TIMEOUT_SECONDS", "nan"),
    ("THREADS", "many"), ("THREADS", "0"), ("THREADS", "-1"),
    ("ALLOWED_HOSTNAMES", "*.example.com"), ("ALLOWED_HOSTNAMES", "*"), ("ALLOWED_HOSTNAMES", "https://a.com"),
    ("ALLOWED_HOSTNAMES", "a.com:443"), ("ALLOWED_HOSTNAMES", "a.com/path"), ("ALLOWED_HOSTNAMES", "a.com,,b.com"),
    ("ALLOWED_HOSTNAMES", "-bad.com"),
    ("ALLOWED_AGENT_IDS", "agent 1"), ("ALLOWED_AGENT_IDS", "a&b"), ("ALLOWED_AGENT_IDS", "x" * 129),
    ("OUTSPEED_API_BASE", "api.outspeed.com"), ("OUTSPEED_API_BASE", "ftp://api.outspeed.com"),
    ("OUTSPEED_API_BASE", "https://user:pw@api.outspeed.com"), ("OUTSPEED_API_BASE", "https://api.outspeed.com?x=1"),
    ("OUTSPEED_API_BASE", "https://api.outspeed.com:99999"),
])
def test_malformed_values_raise_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        from_env({"OUTSPEED_API_KEY": KEY, name: value})


@pytest.mark.parametrize("bad_key", [KEY + " x", KEY + "\x00", "sk-ünïcode-" + KEY, KEY[:9] + "\t" + KEY[9:]])
def test_a_malformed_key_is_refused_without_quoting_it(bad_key):
    with pytest.raises(SettingsError, match="OUTSPEED_API_KEY") as failure:
        from_env({"OUTSPEED_API_KEY": bad_key})
    assert bad_key not in str(failure.value)
    assert KEY[:9] not in str(failure.value)


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_blank_values_mean_unset(value):
    s = from_env({name: value for name in ("OUTSPEED_API_KEY", "ALLOWED_HOSTNAMES", "ALLOWED_AGENT_IDS",
                                            "SESSION_CONFIG", "HTTPS_ORIGINS_ONLY", "UPSTREAM_TIMEOUT_SECONDS")})
    assert s == Settings(threads=s.threads)
