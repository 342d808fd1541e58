"""`make run AUTH=demo` in headless Debian Chromium: the endpoint requires ID tokens from the
local demo issuer. Without signing in the page shows `unauthenticated`; after "Sign in (demo)"
it gets a key (never shown), the browser's preflight for the Authorization header passes, and
neither the key nor the ID token reaches the page or the logs."""
from __future__ import annotations


import pytest

from tools.function_server import log_lines

from .conftest import TEST_AGENT, local_devserver, screenshot

RESULT = "#result"


def _is_token_post(response) -> bool:
    return response.url.endswith("/token") and response.request.method == "POST"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    server = local_devserver(tmp_path_factory, "webauth", "--auth", "demo")
    yield server
    server.stop()


def test_the_banner_names_the_demo_issuer(demo):
    issuer = demo.banner_url("demo issuer")
    assert issuer.startswith("http://127.0.0.1:")
    assert "issuer=" in demo.banner_url("example page")


def test_without_sign_in_the_page_shows_unauthenticated(demo, page):
    page.goto(demo.banner_url("example page"))
    assert page.is_visible("#sign-in")
    with page.expect_response(_is_token_post) as answer:
        page.click("#get")
    assert answer.value.status == 401
    assert "authorization" not in answer.value.request.all_headers()
    page.wait_for_selector(f'{RESULT}[data-state="error"]')
    text = page.inner_text(RESULT)
    assert "unauthenticated (HTTP 401)" in text and "Sign in (demo)" in text
    # the browser let the page read the 401 (CORS on refusals): no CORS complaint on the console
    assert not [line for line in page.console_lines if "CORS" in line], page.console_lines
    screenshot(page, "auth-unauthenticated")


def test_after_sign_in_the_page_gets_a_key_and_shows_neither_secret(demo, page):
    page.goto(demo.banner_url("example page"))
    with page.expect_response(lambda r: r.url.endswith("/demo/sign-in")) as signed_in:
        page.click("#sign-in")
    id_token = signed_in.value.json()["idToken"]
    page.wait_for_selector("#sign-out", state="visible")
    assert "Signed in as demo-user" in page.inner_text("#who")

    with page.expect_response(_is_token_post) as answer:
        page.click("#get")
    response = answer.value
    assert response.status == 200, response.text()
    assert response.request.all_headers()["authorization"] == f"Bearer {id_token}"
    key = response.json()["client_secret"]["value"]
    page.wait_for_selector(f'{RESULT}[data-state="success"]')
    assert f"Got an ephemeral key for agent {TEST_AGENT}" in page.inner_text(RESULT)
    screenshot(page, "auth-signed-in")
    content = page.content()
    assert key not in content and id_token not in content
    assert all(key not in line and id_token not in line for line in page.console_lines)

    # Chromium sent a preflight for the Authorization header, and the endpoint passed it; the
    # POST that followed carried the verified subject into the log line, never the token.
    lines = log_lines(demo.output())
    assert any(line["message"].startswith("OPTIONS /token 204") for line in lines), lines
    minted = [line for line in lines if line["code"] == "ok"]
    assert minted and minted[-1]["subject"] == "demo-user"
    output = demo.output()
    assert id_token not in output and id_token.split(".")[2] not in output and key not in output

    # signing out: back to unauthenticated
    page.click("#sign-out")
    with page.expect_response(_is_token_post) as again:
        page.click("#get")
    assert again.value.status == 401


def test_without_auth_demo_the_sign_in_control_is_hidden(devserver, page):
    page.goto(devserver.page_url(agentId=TEST_AGENT))
    assert not page.is_visible("#account")
