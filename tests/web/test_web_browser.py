"""Headless Debian Chromium against `make run`'s devserver: the example page from an allowed
origin gets a key (and never shows it); from a disallowed origin the browser blocks the call."""
from __future__ import annotations

import signal

import pytest

from .conftest import TEST_AGENT, DevServer, screenshot

RESULT = "#result"


def _is_token_post(response) -> bool:
    return response.url.endswith("/token") and response.request.method == "POST"


def test_allowed_origin_gets_a_key_and_the_page_never_shows_it(devserver, page):
    page.goto(devserver.page_url(agentId=TEST_AGENT))
    with page.expect_response(_is_token_post) as answer:
        page.click("#get")
    response = answer.value
    assert response.status == 200
    assert response.request.all_headers()["origin"] == f"http://localhost:{devserver.web_port}"
    session = response.json()
    key, expires_at = session["client_secret"]["value"], session["client_secret"]["expires_at"]
    assert key and isinstance(expires_at, int)

    page.wait_for_selector(f'{RESULT}[data-state="success"]')
    text = page.inner_text(RESULT)
    assert f"Got an ephemeral key for agent {TEST_AGENT}" in text
    assert "expires at" in text and " s)" in text  # the expiry with the seconds left
    screenshot(page, "success")
    assert key not in page.content(), "the ephemeral key must never be put in the page"
    assert all(key not in line for line in page.console_lines), "the ephemeral key must never be logged"
    assert not [line for line in page.console_lines if "Failed to load resource" in line], page.console_lines
    assert key not in devserver.output(), "the ephemeral key must never be logged by the endpoint"


def test_endpoint_error_message_is_shown(devserver, page):
    page.goto(devserver.page_url(agentId="someone-elses-agent"))
    with page.expect_response(_is_token_post) as answer:
        page.click("#get")
    assert answer.value.status == 403
    error = answer.value.json()
    assert error["error"] == "agent_not_allowed"

    page.wait_for_selector(f'{RESULT}[data-state="error"]')
    text = page.inner_text(RESULT)
    assert "agent_not_allowed (HTTP 403)" in text
    assert error["message"] in text  # the endpoint's own words
    screenshot(page, "error-agent-not-allowed")


def test_disallowed_origin_is_blocked_by_the_browser(devserver, page):
    # Same page, same server, but the origin's hostname is 127.0.0.1, not the allowed `localhost`.
    page.goto(devserver.page_url(host="127.0.0.1", agentId=TEST_AGENT))
    page.click("#get")
    page.wait_for_selector(f'{RESULT}[data-state="error"]')
    text = page.inner_text(RESULT)
    assert "network_error" in text
    assert "127.0.0.1" in text and "CORS" in text
    screenshot(page, "error-origin-blocked")
    # The browser itself refused (it says so on the console), not some other network failure.
    assert any("blocked by CORS policy" in line for line in page.console_lines), page.console_lines


def test_make_run_serves_a_key_to_the_page_it_advertises(browser, page):
    """The default configuration (the dev stack, what `make run` uses), from the banner's own URL."""
    server = DevServer().start()
    try:
        assert "using the local Outspeed stand-in at http://127.0.0.1:" in server.output()
        page.goto(server.banner_url("example page"))
        if not page.input_value("#endpoint").endswith(f":{server.port}/token"):
            pytest.fail(f"the banner's page URL does not point at the endpoint:\n{server.output()}")
        page.click("#get")
        page.wait_for_selector(f'{RESULT}:is([data-state="success"], [data-state="error"])')
        assert page.get_attribute(RESULT, "data-state") == "success", page.inner_text(RESULT)
    finally:
        server.signal(signal.SIGINT, group=True)
        assert server.wait() == 0, server.output()


def test_cross_origin_page_reads_retry_after_of_a_429(page, tmp_path):
    """Outspeed rate limits: the endpoint passes Retry-After on, and the browser lets the page
    on another origin read it (Access-Control-Expose-Headers), so the user sees when to retry."""
    from tools.outspeed_standin import OutspeedStandIn

    with OutspeedStandIn(api_key="web-test-key") as upstream:
        upstream.behaviour = "429"
        upstream.state.retry_after = "42"
        server = DevServer(env={"OUTSPEED_API_KEY": "web-test-key", "OUTSPEED_API_BASE": upstream.url}).start()
        try:
            page.goto(server.page_url(agentId=TEST_AGENT))
            with page.expect_response(_is_token_post) as answer:
                page.click("#get")
            assert answer.value.status == 429
            page.wait_for_selector(f'{RESULT}[data-state="error"]')
            text = page.inner_text(RESULT)
            assert "upstream_rate_limited (HTTP 429)" in text
            assert "Retry after 42 s." in text, text
            assert len(upstream.requests) == 1  # the call really went to the (scripted) upstream
        finally:
            server.stop()
