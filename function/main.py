"""Outspeed token endpoint: a Cloud Function (2nd gen) that holds the Outspeed API key and
hands browsers short-lived ephemeral keys. Entry point: `token`, an async (ASGI) function
served by functions-framework's ASGI mode (FUNCTION_USE_ASGI=true: gunicorn + one uvicorn
worker on uvloop + httptools).

Wiring only. functions-framework puts this directory on sys.path, so the sibling modules
import flat: token_settings (environment, read once at cold start when token_handler imports
it), token_policy (pure decisions), token_caller (the caller-credential step) with token_auth
(pure token verification) and token_keys (signing keys, fetched on first need), token_upstream
(the pooled HTTP client to Outspeed, also used for key fetches), token_log (one JSON line
per request), token_json (strict JSON), token_handler (a request from first check to response).

Importing this module does not import the HTTP client (pyreqwest): functions-framework imports
it in the gunicorn master, which never calls Outspeed. The worker imports it and builds the
pooled client at boot (the lifespan below), before it accepts its first request, so no request
waits for it.
"""
import contextlib

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

import functions_framework.aio

import token_handler
import token_upstream

# Importing token_handler read and validated the environment: a malformed setting has
# already stopped the cold start with a message naming the variable.


@functions_framework.aio.http
async def token(request: Request) -> Response:
    return await token_handler.handle(request)


# The framework builds its Starlette app right after importing this module. Left alone, that
# app answers /robots.txt and /favicon.ico with its own plain-text 404, a method its routes do
# not list with a plain-text 405, and an escaped exception with a plain-text 500. Its builder
# is looked up on functions_framework.aio at call time; wrapping it here (the one seam between
# "module loaded" and "app built") lets the module hand the server token_handler.DirectApp in
# front of that app: HTTP requests go straight to the handler (its checks decide every path
# and method, so the router and middleware stack would only cost CPU), while lifespan stays
# the framework's. Where requests must take the framework's route (LOG_EXECUTION_ID=true), it
# adds instead, with Starlette's public API, a handler for those routing answers and an
# innermost middleware for exceptions. Either way the contract (JSON, no-store, CORS, one log
# line) holds for every request.
_aio = functions_framework.aio
# The original builder (kept on the module so that importing this file twice, as tests do,
# never wraps the wrapper).
_build = getattr(_aio, "_token_original_builder", None) or getattr(_aio, "_create_asgi_app_with_function", None)
if _build is None:  # fail the cold start loudly rather than serve outside the contract
    raise RuntimeError("functions_framework.aio._create_asgi_app_with_function is missing: "
                       "the contract's routing hook is written for functions-framework 3.10.x")


def _contract_app(function, signature_type, enable_id_logging):
    app = _build(function, signature_type, enable_id_logging)
    app.router.lifespan_context = _with_upstream_session(app.router.lifespan_context)
    if not enable_id_logging:
        return token_handler.DirectApp(app)  # HTTP straight to the handler; lifespan through `app`
    # LOG_EXECUTION_ID=true: the framework's per-request wrapper must run (it labels every
    # stdout line with the execution id), so requests take the framework's route, with the
    # contract's hooks for its routing answers and escaped exceptions.
    app.add_exception_handler(HTTPException, token_handler.handle_http_exception)
    app.user_middleware.append(Middleware(token_handler.ContractErrors))  # innermost: sees every escape first
    return app


def _with_upstream_session(inner):
    """The app's lifespan, plus: at startup, in the loop that will serve, import the HTTP client
    and build the process's pooled client (token_upstream.session). uvicorn runs startup before
    the worker accepts a connection, so the first request finds the client ready (a failure
    here stops the worker, loudly)."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        token_upstream.session()
        store = await _open_quota_store()
        async with inner(app) as state:
            yield state
        await token_upstream.close()  # shutdown runs after the server has drained its requests
        if store is not None:
            await store.close()
    return lifespan


async def _open_quota_store():
    """Quotas configured: import redis (about 65 ms) and open the store's pool at boot, with the
    scripts loaded, so the first request finds them ready. A store that cannot answer now does
    not stop the worker: each request decides (503, or mint when QUOTA_FAIL_OPEN is true)."""
    settings = token_handler.SETTINGS
    if settings.quotas is None:
        return None  # no quotas: redis is never imported
    store = token_handler.quota_store(settings.quotas, settings.threads)
    problem = await store.warm()
    if problem is not None:
        print(f"quota store not reachable at boot ({problem}); requests will retry it", flush=True)
    return store


_aio._token_original_builder = _build
_aio._create_asgi_app_with_function = _contract_app
