"""Outspeed token endpoint: a Cloud Function (2nd gen) that holds the Outspeed API key and
hands browsers short-lived ephemeral keys. Entry point: `token`.

Wiring only. functions-framework puts this directory on sys.path, so the sibling modules
import flat: token_settings (environment, read once here at cold start), token_policy (pure
decisions), token_upstream (the pooled call to Outspeed), token_log (one JSON line per
request), token_handler (a request from first check to response).
"""
import flask
import functions_framework

import token_handler

# Importing token_handler read and validated the environment: a malformed setting has
# already stopped the cold start with a message naming the variable.


@functions_framework.http
def token(request: flask.Request) -> flask.Response:
    return token_handler.handle(request)


# The framework answers /robots.txt and /favicon.ico with its own HTML 404 and turns escaped
# exceptions into plain-text 500s; route both through the contract (JSON, no-store, CORS, log).
@functions_framework.errorhandler(404)
def _not_found(_exc) -> flask.Response:
    return token_handler.handle(flask.request)


@functions_framework.errorhandler(Exception)
def _escaped(exc) -> flask.Response:
    return token_handler.handle_escaped(flask.request, exc)
