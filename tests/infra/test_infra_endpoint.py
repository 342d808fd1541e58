"""TokenEndpoint's own rules that the repository's stacks do not exercise (the consumer test in
tests/package runs two endpoints in one program from the installed wheel)."""
from __future__ import annotations

import asyncio

import pulumi
import pytest

from outspeed_token.endpoint import DEFAULT_PREFIX_HEAD, _plain, default_prefix
from outspeed_token.settings import ConfigError
from outspeed_token.names import physical_name


def test_default_prefix_is_unique_where_account_ids_cut_it():
    names = ["agent-family-alpha", "agent-family-beta", "agent-family-alpha-2"]
    prefixes = {default_prefix("voice-app", "prod", n) for n in names}
    assert len({p[:23] for p in prefixes}) == len(names)  # account ids keep 23 characters
    for p in prefixes:
        assert len(p) <= DEFAULT_PREFIX_HEAD + 7 and physical_name(p, max_len=40) == p
    # Deterministic, and each of Pulumi project, stack and name matters.
    assert default_prefix("a", "dev", "x") == default_prefix("a", "dev", "x")
    assert len({default_prefix("a", "dev", "x"), default_prefix("b", "dev", "x"), default_prefix("a", "prod", "x")}) == 3


@pytest.fixture
def event_loop():
    """pulumi.Output needs a current event loop; earlier tests in the session may have closed theirs."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def test_values_that_decide_resources_must_be_known_at_preview(event_loop):
    with pytest.raises(ConfigError) as err:
        _plain("rateLimit", {"requestsPerMinute": pulumi.Output.from_input(5)})
    assert err.value.key == "rateLimit.requestsPerMinute" and "known at preview" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _plain("allowedHostnames", ["a.example.com", pulumi.Output.from_input("b.example.com")])
    assert err.value.key == "allowedHostnames"
    # The store URL is validated at preview like every other value (the component stores it as a
    # secret itself), so it too must be a plain value.
    with pytest.raises(ConfigError) as err:
        _plain("quotas", {"redisUrl": pulumi.Output.secret("rediss://r:6379"), "failOpen": False})
    assert err.value.key == "quotas.redisUrl"
