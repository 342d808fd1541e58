"""Load: 5,000 requests at concurrency 32 against the real server (functions-framework,
one gunicorn worker, as Cloud Functions runs it) and the loopback Outspeed stand-in.

Every request is answered with the contract (no 5xx at all), every success carries a fresh
ephemeral key the stand-in minted, nothing rejected reaches the upstream, the pooled
keep-alive connections hold (no connection churn), and the worker's memory does not grow.
No timings are asserted.
"""
from __future__ import annotations

import threading

import pytest
import requests

from bench import contract, procstat
from function_helpers import API_KEY, own_stack

TOTAL = 5000
CONCURRENCY = 32
THREADS = 80  # the function's default concurrency setting (DESIGN.md)
UPSTREAM_TIMEOUT = 5
CLIENT_TIMEOUT = 30  # a wide margin over UPSTREAM_TIMEOUT: a request that gets no answer fails
RSS_GROWTH_LIMIT_KIB = 10 * 1024
BAD_AGENT = "bad agent/../id"


def request_for(i: int) -> tuple[str, dict, str]:
    """(method, kwargs, expected outcome) for request number i: mostly valid, some rejected."""
    if i % 10 == 7:
        return "POST", {"json": {"agentId": BAD_AGENT}}, "invalid_agent_id"
    if i % 10 == 9:
        return "GET", {}, "method_not_allowed"
    return "POST", {"json": {"agentId": f"agent-{i % 5}", "source": "load-test"}}, "ok"


@pytest.fixture(scope="module")
def stack():
    with own_stack(THREADS=str(THREADS), UPSTREAM_TIMEOUT_SECONDS=str(UPSTREAM_TIMEOUT)) as (upstream, server):
        yield upstream, server


def test_5000_requests_at_concurrency_32(stack):
    upstream, server = stack
    worker = procstat.worker_pid(server.process.pid)
    url = server.url + "/token"
    lock = threading.Lock()
    next_index = iter(range(TOTAL))
    done = [0]
    rss_kib: dict[str, int] = {}
    outcomes: dict[int, str] = {}
    problems: list[str] = []
    secrets_seen: list[str] = []

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            method, kwargs, expected = request_for(i)
            try:
                response = session.request(method, url, timeout=CLIENT_TIMEOUT, **kwargs)
                got = contract.outcome(response.status_code, response.headers, response.content)
                if got == "ok":
                    value = response.json()["client_secret"]["value"]
            except (requests.RequestException, contract.ContractViolation) as exc:
                got = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes[i] = got
                if got != expected:
                    problems.append(f"request {i}: expected {expected}, got {got}")
                elif got == "ok":
                    secrets_seen.append(value)
                done[0] += 1
                # the worker's resident memory once the first thousand are answered, and at the end
                if done[0] == 1000:
                    rss_kib["first"] = procstat.status_kib(worker, "VmRSS")
                elif done[0] == TOTAL:
                    rss_kib["last"] = procstat.status_kib(worker, "VmRSS")

    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "load clients still running after 240 s"

    assert len(outcomes) == TOTAL
    assert not problems, f"{len(problems)} of {TOTAL} requests off-contract, e.g. {problems[:5]}"
    expected_ok = sum(request_for(i)[2] == "ok" for i in range(TOTAL))
    # every success is a distinct key the stand-in minted for that very request
    assert len(secrets_seen) == expected_ok
    assert len(set(secrets_seen)) == expected_ok
    assert set(secrets_seen) <= set(upstream.minted)
    # only valid requests reached the upstream, each once, with the key
    sent = upstream.requests
    assert len(sent) == expected_ok
    assert all(r.headers.get("Authorization") == f"Bearer {API_KEY}" for r in sent)
    assert not any(r.query.get("agent_id") == [BAD_AGENT] for r in sent)
    # keep-alive pooling holds: no more upstream connections than requests in flight at once
    assert upstream.connections <= CONCURRENCY, f"{upstream.connections} upstream connections opened"
    # same worker throughout (gunicorn would have replaced one that crashed), and no leak
    assert procstat.worker_pid(server.process.pid) == worker
    growth = rss_kib["last"] - rss_kib["first"]
    print(f"worker VmRSS {rss_kib['first']} KiB after 1,000, {rss_kib['last']} KiB after {TOTAL}; "
          f"{upstream.connections} upstream connections")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"worker RSS grew {growth} KiB between the first and last thousand"
    output = server.output()
    assert API_KEY not in output
    assert not [value for value in secrets_seen if value in output], "ephemeral keys in the server log"
