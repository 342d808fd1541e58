"""`make run QUOTAS=demo` in headless Debian Chromium: the devserver runs a local redis-server
as the quota store with a small global budget, so pressing the page's button a few times ends
in 429 quota_exceeded, and the page's own code reads Retry-After (exposed by CORS) to say when
to retry."""
from __future__ import annotations

import re

import pytest

from tools.devserver import DEMO_GLOBAL

from .conftest import local_devserver, screenshot

RESULT = "#result"
BUDGET = int(DEMO_GLOBAL.split("/")[0])


@pytest.fixture(scope="module")
def quota_demo(tmp_path_factory):
    server = local_devserver(tmp_path_factory, "webquota", "--quotas", "demo")
    yield server
    server.stop()


def _is_token_post(response) -> bool:
    return response.url.endswith("/token") and response.request.method == "POST"


def test_the_banner_names_the_local_store(quota_demo):
    assert re.search(r"^\s+quota store\s+redis-server on 127\.0\.0\.1:\d+ \(budgets COUNT/SECONDS: global 3/60\)$",
                     quota_demo.output(), re.M), quota_demo.output()


def test_pressing_get_past_the_budget_shows_429_with_retry_after(quota_demo, page):
    page.goto(quota_demo.banner_url("example page"))
    statuses = []
    # The budget, plus room for one window reset (windows are aligned to the minute).
    for _ in range(2 * BUDGET + 2):
        with page.expect_response(_is_token_post) as answer:
            page.click("#get")
        statuses.append(answer.value.status)
        page.wait_for_selector(f'{RESULT}[data-state="{"error" if statuses[-1] != 200 else "success"}"]')
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 429 and statuses.count(200) >= BUDGET, statuses
    text = page.inner_text(RESULT)
    assert "quota_exceeded (HTTP 429)" in text, text
    # the page's code read Retry-After: CORS exposed it
    match = re.search(r"Retry after (\d+) s\.", text)
    assert match and 1 <= int(match.group(1)) <= 60, text
    assert not [line for line in page.console_lines if "CORS" in line], page.console_lines
    screenshot(page, "quota-exceeded")


def test_stopping_the_devserver_stops_the_store(quota_demo):
    import socket

    port = int(re.search(r"redis-server on 127\.0\.0\.1:(\d+)", quota_demo.output()).group(1))
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # up while the devserver runs
    quota_demo.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
