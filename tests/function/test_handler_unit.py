"""internal_error: the one contract row no well-behaved upstream can trigger. Exercised in
process by handing the handler a session that blows up (with the key in its message, as a
careless library might), then checking the response says nothing and the log line carries
the traceback with the key scrubbed.
"""
from __future__ import annotations

import json

import flask
import pytest

import main
import token_handler
from token_settings import Settings

KEY = "sk-unit-handler-5f1c0e9a7b"
SETTINGS = Settings(api_key=KEY, allowed_hostnames=frozenset({"app.example.com"}), project="p")
APP = flask.Flask("unit")


class ExplodingSession:
    def post(self, url, **kwargs):
        raise RuntimeError(f"boom while calling {url} with Bearer {KEY}")


def request_context(body=b'{"agentId": "agent-1"}', origin="https://app.example.com", path="/token"):
    return APP.test_request_context(path, method="POST", data=body, content_type="application/json",
                                    headers={"Origin": origin, "User-Agent": "unit"})


def only_log_line(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def test_an_unexpected_exception_is_500_internal_error_and_says_nothing_more(capsys):
    with request_context():
        response = token_handler.handle(flask.request, SETTINGS, ExplodingSession())
    assert response.status_code == 500
    assert json.loads(response.get_data()) == {"error": "internal_error", "message": "Internal error."}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "boom" not in response.get_data(as_text=True)
    line = only_log_line(capsys)
    assert line["severity"] == "ERROR" and line["code"] == "internal_error"
    assert "Traceback" in line["message"] and "RuntimeError: boom" in line["message"]
    assert KEY not in json.dumps(line)
    assert "[redacted]" in line["message"]


def test_contract_errors_are_not_tracebacks(capsys):
    with request_context(body=b'{"agentId": "agent&1"}'):
        response = token_handler.handle(flask.request, SETTINGS, ExplodingSession())
    assert response.status_code == 400
    line = only_log_line(capsys)
    assert "Traceback" not in line["message"] and line["severity"] == "WARNING"


def test_escaped_exceptions_become_internal_error_too(capsys):
    with request_context():
        try:
            raise ValueError("escaped from the framework")
        except ValueError as exc:
            response = token_handler.handle_escaped(flask.request, exc, SETTINGS)
    assert response.status_code == 500
    assert json.loads(response.get_data())["error"] == "internal_error"
    assert response.headers["Cache-Control"] == "no-store"
    assert "ValueError: escaped" in only_log_line(capsys)["message"]


def test_main_exposes_the_token_entry_point():
    assert callable(main.token)
    with APP.test_request_context("/token", method="GET"):
        response = main.token(flask.request)
    assert response.status_code == 405 and response.headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("path", ["/token", "/"])
def test_preflight_has_no_body_and_no_content_type(path, capsys):
    with APP.test_request_context(path, method="OPTIONS", headers={"Origin": "https://app.example.com"}):
        response = token_handler.handle(flask.request, SETTINGS)
    assert response.status_code == 204
    assert response.get_data() == b"" and "Content-Type" not in response.headers
