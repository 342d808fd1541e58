"""Who is calling: the caller-credential step of a request (DESIGN.md, "Caller
authentication"), between the method check and the body checks.

ID token first (`Authorization: Bearer`), then App Check (`X-Firebase-AppCheck`); when both are
configured both are required. token_auth decides (pure), token_keys supplies the keys (the
only I/O, through the injected fetch). The answer is the verified identity for the log line,
or the contract's rejection plus a short reason for the log line; never a token.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable, NamedTuple

import token_auth
from token_auth import Refused
from token_consume import Consumer
from token_keys import Fetch, KeySource, KeysUnavailable
from token_policy import ANONYMOUS_NOT_ALLOWED, APP_CHECK_FAILED, UNAUTHENTICATED, Rejection, auth_unavailable
from token_settings import CallerAuth


class Caller(NamedTuple):
    """A verified caller: the ID token's `sub` and the App Check token's `sub` (app id)."""
    subject: str | None = None
    app_id: str | None = None


class Denied(NamedTuple):
    rejection: Rejection
    reason: str  # e.g. "id_token: expired"; for the log line only


class Authenticator:
    """One per process (its key caches are shared by every request)."""

    def __init__(self, auth: CallerAuth, fetch: Fetch, clock: Callable[[], float] = time.monotonic):
        self.auth = auth
        self.enabled = auth.enabled  # read on every request: a plain attribute
        self.id_keys = self.app_check_keys = None
        if auth.id_token is not None:
            check = auth.id_token
            self.id_keys = KeySource(fetch, jwks_uri=check.jwks_uri,
                                     discovery_url=None if check.jwks_uri else check.discovery_url,
                                     issuer=check.issuer, clock=clock)
        if auth.app_check is not None:
            self.app_check_keys = KeySource(fetch, jwks_uri=auth.app_check.jwks_uri, clock=clock)
        # Replay protection: consumes App Check tokens at Firebase (the handler calls it last,
        # right before spending); None when off.
        self.consumer = Consumer(auth.app_check, fetch, clock) if auth.app_check and auth.app_check.consume else None

    async def check(self, authorization: str | None, app_check: str | None) -> Caller | Denied:
        if not token_auth.library_loaded():
            # Once per process: PyJWT + cryptography load in a worker thread, not on the loop.
            await asyncio.to_thread(token_auth.load_library)
        subject = app_id = None
        if self.auth.id_token is not None:
            claims = await _verified("id_token", token_auth.bearer_token(authorization), self.id_keys,
                                     lambda token, key: token_auth.verify_id_token(token, key, self.auth.id_token),
                                     UNAUTHENTICATED)
            if isinstance(claims, Denied):
                return claims
            # Right after the ID token verifies: a free, scriptable identity is no identity.
            if not self.auth.id_token.allow_anonymous and token_auth.is_anonymous(claims):
                return Denied(ANONYMOUS_NOT_ALLOWED, "id_token: anonymous")
            subject = claims["sub"]
        if self.auth.app_check is not None:
            claims = await _verified("app_check", token_auth.app_check_token(app_check), self.app_check_keys,
                                     lambda token, key: token_auth.verify_app_check(token, key, self.auth.app_check),
                                     APP_CHECK_FAILED)
            if isinstance(claims, Denied):
                return claims
            app_id = claims["sub"]
        return Caller(subject, app_id)


async def _verified(kind: str, token: str | Refused, keys: KeySource, verify, refusal: Rejection):
    if isinstance(token, Refused):
        return Denied(refusal, f"{kind}: {token.reason}")
    header = token_auth.token_header(token)
    if isinstance(header, Refused):
        return Denied(refusal, f"{kind}: {header.reason}")
    try:
        key = await keys.key(header.kid)
    except KeysUnavailable as unavailable:
        return Denied(auth_unavailable(unavailable.retry_after), f"{kind}: keys unavailable ({unavailable.reason})")
    if key is None:
        return Denied(refusal, f"{kind}: unknown_kid")
    claims = verify(token, key)
    if isinstance(claims, Refused):
        return Denied(refusal, f"{kind}: {claims.reason}")
    return claims
