"""The framework's floor for `make bench`: functions-framework (gunicorn, one worker, THREADS)
serving a function that answers a fixed token JSON without calling anything. The endpoint
cannot be faster than this; the gap between the two is the endpoint's own work."""
import flask
import functions_framework

_BODY = b'{"client_secret": {"value": "ek_noop"}}'


@functions_framework.http
def token(request: flask.Request) -> flask.Response:
    request.get_data()
    return flask.Response(_BODY, 200, content_type="application/json", headers={"Cache-Control": "no-store"})
