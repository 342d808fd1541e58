"""Fixtures for the function tests: one loopback Outspeed stand-in for the session, and the
real functions-framework server (tools.function_server) started once per settings variant
(helpers in function_helpers.py)."""
from __future__ import annotations

import pytest

import function_helpers  # also puts function/ on sys.path for the unit tests
from function_helpers import Api, Servers
from tools.outspeed_standin import OutspeedStandIn


@pytest.fixture(scope="session")
def upstream():
    standin = OutspeedStandIn(api_key=function_helpers.API_KEY).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def servers(upstream):
    pool = Servers(upstream)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def api(servers):
    # Depends on `servers` so it is torn down first: closing the keep-alive connections lets
    # gunicorn stop at once instead of waiting out its keep-alive timeout.
    client = Api()
    yield client
    client.http.close()


@pytest.fixture
def fresh_upstream(upstream, servers):
    """Each test starts from a succeeding, empty stand-in; minted keys are kept for the scan."""
    upstream.reset()
    upstream.state.retry_after = "7"
    upstream.state.slow_seconds = 5.0
    upstream.state.known_agents = None
    yield upstream
    servers.minted.extend(upstream.minted)
    upstream.reset()
    upstream.state.known_agents = None


