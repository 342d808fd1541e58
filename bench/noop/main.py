"""The framework's floor for `make bench`: functions-framework in ASGI mode (gunicorn, one
uvicorn worker, uvloop + httptools, as the endpoint runs) serving an async function that
answers a fixed token JSON without calling anything. The endpoint cannot be faster than this;
the gap between the two is the endpoint's own work."""
import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

_BODY = b'{"client_secret": {"value": "ek_noop"}}'


@functions_framework.aio.http
async def token(request: Request) -> Response:
    await request.body()
    return Response(_BODY, 200, media_type="application/json", headers={"Cache-Control": "no-store"})
