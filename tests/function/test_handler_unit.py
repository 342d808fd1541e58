"""internal_error: the one contract row no well-behaved upstream can trigger, and the
framework's own answers (robots.txt, favicon.ico, unlisted methods, escaped exceptions) that
must still be the contract's. Exercised in process on the real ASGI app functions-framework
builds from function/main.py, called directly (no HTTP client library in between).
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.requests import Request

import functions_framework.aio
import main
import token_handler
import token_upstream
from token_settings import SETTINGS as ENV_SETTINGS, Settings

KEY = "sk-unit-handler-5f1c0e9a7b"
SETTINGS = Settings(api_key=KEY, allowed_hostnames=frozenset({"app.example.com"}), project="p")
MAIN = str(Path(main.__file__).resolve())


def scope(method="POST", path="/token", headers=(), client=("203.0.113.9", 5000)):
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": client, "server": ("127.0.0.1", 8080)}


def receiver(body: bytes):
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}
    return receive


async def call_app(app, method="POST", path="/token", headers=(), body=b""):
    sent = []

    async def send(message):
        sent.append(message)
    await app(scope(method, path, headers), receiver(body), send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def request_of(body=b'{"agentId": "agent-1"}', origin="https://app.example.com", path="/token", method="POST"):
    headers = [("Content-Type", "application/json"), ("Origin", origin), ("User-Agent", "unit")]
    return Request(scope(method, path, headers), receiver(body))


def only_log_line(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


@pytest.fixture(params=["direct", "framework"])
def app(request):
    """Both apps main.py can hand the server: DirectApp (the default), and the framework's own
    Starlette app with the contract's hooks (what LOG_EXECUTION_ID=true gets)."""
    if request.param == "direct":
        built = functions_framework.aio.create_asgi_app(target="token", source=MAIN)
        assert isinstance(built, token_handler.DirectApp)
        return built
    built = main._contract_app(main.token, "http", True)
    assert not isinstance(built, token_handler.DirectApp)
    return built


@pytest.fixture
def exploding_upstream(monkeypatch):
    async def boom(call, settings):
        raise RuntimeError(f"boom while calling with Bearer {KEY}")
    monkeypatch.setattr(token_upstream, "mint", boom)


def test_an_unexpected_exception_is_500_internal_error_and_says_nothing_more(exploding_upstream, capsys):
    response = asyncio.run(token_handler.handle(request_of(), SETTINGS))
    assert response.status_code == 500
    assert json.loads(response.body) == {"error": "internal_error", "message": "Internal error."}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert b"boom" not in response.body
    line = only_log_line(capsys)
    assert line["severity"] == "ERROR" and line["code"] == "internal_error"
    assert "Traceback" in line["message"] and "RuntimeError: boom" in line["message"]
    assert KEY not in json.dumps(line)
    assert "[redacted]" in line["message"]
    assert line["httpRequest"]["remoteIp"] == "203.0.113.9"  # from the ASGI client


def test_contract_errors_are_not_tracebacks(exploding_upstream, capsys):
    response = asyncio.run(token_handler.handle(request_of(body=b'{"agentId": "agent&1"}'), SETTINGS))
    assert response.status_code == 400
    line = only_log_line(capsys)
    assert "Traceback" not in line["message"] and line["severity"] == "WARNING"


def test_an_exception_escaping_the_view_is_the_contracts_internal_error(app, monkeypatch, capsys):
    # Raised outside handle()'s own guard, where the framework would answer a plain-text 500.
    async def escaping(request, settings=ENV_SETTINGS):
        raise ValueError("escaped from the framework")
    monkeypatch.setattr(token_handler, "handle", escaping)
    status, headers, body = asyncio.run(call_app(app, headers=[("Origin", "https://app.example.com")]))
    assert status == 500
    assert json.loads(body) == {"error": "internal_error", "message": "Internal error."}
    assert headers["cache-control"] == "no-store" and headers["content-type"] == "application/json"
    assert "access-control-allow-origin" in headers
    line = only_log_line(capsys)
    assert line["code"] == "internal_error" and "ValueError: escaped" in line["message"]


@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_the_frameworks_own_404_routes_answer_the_contract(app, path, capsys):
    status, headers, body = asyncio.run(call_app(app, "GET", path))
    assert status == 404 and json.loads(body)["error"] == "not_found"
    assert headers["cache-control"] == "no-store" and headers["content-type"] == "application/json"
    assert only_log_line(capsys)["httpRequest"]["requestUrl"] == path


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT"])
def test_methods_the_frameworks_routes_do_not_list_answer_the_contract(app, method, capsys):
    status, headers, body = asyncio.run(call_app(app, method, "/token"))
    assert status == 405 and json.loads(body)["error"] == "method_not_allowed"
    assert headers["allow"] == "POST, OPTIONS"
    assert only_log_line(capsys)["code"] == "method_not_allowed"


def test_main_exposes_the_async_token_entry_point(capsys):
    assert asyncio.iscoroutinefunction(main.token)
    response = asyncio.run(main.token(request_of(method="GET")))
    assert response.status_code == 405 and response.headers["Allow"] == "POST, OPTIONS"


def test_importing_main_twice_hooks_the_app_builder_once():
    app = functions_framework.aio.create_asgi_app(target="token", source=MAIN)
    builder = functions_framework.aio._create_asgi_app_with_function
    assert builder.__name__ == "_contract_app"
    assert functions_framework.aio._token_original_builder.__name__ == "_create_asgi_app_with_function"
    assert isinstance(app, token_handler.DirectApp)
    framework_route = builder(main.token, "http", True)  # what LOG_EXECUTION_ID=true gets
    assert sum(1 for m in framework_route.user_middleware if m.cls is token_handler.ContractErrors) == 1


def test_an_exception_while_the_answer_is_sent_is_logged_and_nothing_more_is_sent(monkeypatch, capsys):
    # The response start went out, then the send failed: one internal_error line (traceback
    # included, key scrubbed), and no second response on that connection.
    built = functions_framework.aio.create_asgi_app(target="token", source=MAIN)
    app = token_handler.DirectApp(built.framework_app, SETTINGS)  # SETTINGS holds the key to scrub

    async def answer(request, settings=ENV_SETTINGS):
        return token_handler.Response(b'{"client_secret": {"value": "ek"}}', media_type="application/json")
    monkeypatch.setattr(token_handler, "handle", answer)
    sent = []

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body":
            raise OSError(f"connection lost while sending (Bearer {KEY})")
    asyncio.run(app(scope(), receiver(b""), send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    line = only_log_line(capsys)
    assert line["code"] == "internal_error" and "OSError: connection lost" in line["message"]
    assert KEY not in json.dumps(line) and "[redacted]" in line["message"]


def test_lifespan_goes_through_the_frameworks_app_and_opens_the_session(monkeypatch):
    app = functions_framework.aio.create_asgi_app(target="token", source=MAIN)
    sent, messages, opened, closed = [], [{"type": "lifespan.startup"}], [], []
    real_close = token_upstream.close

    async def recording_close():
        closed.append(token_upstream._session)  # the client this shutdown closes
        await real_close()
    monkeypatch.setattr(token_upstream, "close", recording_close)

    async def run():
        stop = asyncio.Event()

        async def receive():
            if messages:
                return messages.pop(0)
            await stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message):
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                assert token_upstream._session is not None
                opened.append(token_upstream._session)
                assert closed == []  # nothing closed while serving
                stop.set()
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    asyncio.run(run())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # closed at shutdown, after the server drained: exactly the client startup opened, and the
    # process holds none any more. (That a closed pyreqwest client refuses requests is the
    # client's own behaviour: test_upstream_client.py checks clean shutdowns end to end.)
    assert len(opened) == 1 and closed == opened
    assert token_upstream._session is None


@pytest.mark.parametrize("path", ["/token", "/"])
def test_preflight_has_no_body_and_no_content_type(path, capsys):
    request = Request(scope("OPTIONS", path, [("Origin", "https://app.example.com")]), receiver(b""))
    response = asyncio.run(token_handler.handle(request, SETTINGS))
    assert response.status_code == 204
    assert response.body == b""
    names = {k.lower() for k, _ in response.raw_headers}
    assert b"content-type" not in names and b"content-length" not in names


def test_a_client_gone_midway_is_logged_as_such_not_as_an_error(capsys):
    async def receive():
        return {"type": "http.disconnect"}
    request = Request(scope("POST", "/token", [("Content-Type", "application/json"),
                                                ("Origin", "https://app.example.com")]), receive)
    asyncio.run(token_handler.handle(request, SETTINGS))
    line = only_log_line(capsys)
    assert line["code"] == "client_closed_request" and line["severity"] == "WARNING"
    assert "Traceback" not in line["message"]


# ---- headers sent more than once (issue 18, finding 5) -------------------------------------

def test_header_map_keeps_the_first_copy_and_flags_a_repeated_single_header():
    plain = token_handler.header_map(scope(headers=[("Origin", "https://a.example"), ("Accept", "x"),
                                                    ("Accept", "y"), ("X-Forwarded-For", "1.2.3.4"),
                                                    ("X-Forwarded-For", "5.6.7.8")]))
    # repeating other headers is HTTP's business, not ours
    assert plain == {"origin": "https://a.example", "accept": "x", "x-forwarded-for": "1.2.3.4"}
    for name in ("Origin", "Authorization", "X-Firebase-AppCheck"):
        twice = token_handler.header_map(scope(headers=[(name, "first"), ("Content-Type", "a/b"), (name.upper(), "2nd"),
                                                        ("Origin", "3rd")]))
        assert twice[name.lower()] == "first" and twice[token_handler.DUPLICATE] == name.lower()


@pytest.mark.parametrize("method, path", [("POST", "/token"), ("OPTIONS", "/token"), ("GET", "/elsewhere")])
def test_a_repeated_origin_is_400_before_any_other_check_and_without_cors(app, method, path, capsys):
    status, headers, body = asyncio.run(call_app(app, method, path, headers=[
        ("Origin", "https://app.example.com"), ("Origin", "https://evil.example.com"),
        ("Content-Type", "application/json")], body=b'{"agentId": "agent-1"}'))
    assert status == 400 and json.loads(body) == {
        "error": "duplicate_header", "message": "Send the Origin header at most once."}
    assert headers["cache-control"] == "no-store" and headers["content-type"] == "application/json"
    assert not [name for name in headers if name.startswith("access-control-")]
