"""The quota store's I/O (DESIGN.md, "Spend ceiling"): redis-py's asyncio connections, a small
pool of them per process, two Lua scripts (token_quota's), and the store's time bound.

Imported only when quotas are configured, by the worker's boot (main.py's lifespan): redis-py
costs about 65 ms of import, which the no-quota path never pays. The bound: no reply within
STORE_TIMEOUT_SECONDS (connect and command together, no retry) means the store cannot answer;
the caller then answers 503 quota_unavailable (or mints, when QUOTA_FAIL_OPEN is true).

Why connections and not the `Redis` client object: redis-py does the protocol (RESP, AUTH and
SELECT on connect, TLS, errors); the client object around it adds, per command, a pool
checkout with health check, a retry wrapper and observability events: about 0.05 ms more CPU
per call on the bench machine, half of the spend ceiling's CPU budget (bench/run.py).
A request here takes an idle connection (or opens one), sends one EVALSHA, reads one reply,
and puts the connection back; one that failed or timed out mid-call is closed, never reused.

Nothing here ever puts the store's password into a message: a failure is reported by the
exception's class name only (redis-py's own messages can quote connection details).
"""
from __future__ import annotations

import asyncio
import hashlib

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError

from token_quota import RELEASE_SCRIPT, RESERVE_SCRIPT, Plan, StoreUnavailable
from token_settings import RedisTarget

# "The store cannot answer": no reply within this (connect or command), and the request is
# still answered within 2 s in all (DESIGN.md).
STORE_TIMEOUT_SECONDS = 1.0
_FAILURES = (RedisError, OSError, TimeoutError, ValueError)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - the store names scripts by SHA-1


class Store:
    """One per process (its connections are shared, one request at a time each)."""

    def __init__(self, target: RedisTarget, pool_size: int):
        self.pool_size = max(1, pool_size)
        options = dict(host=target.host, port=target.port, db=target.db, username=target.username,
                       password=target.password, socket_connect_timeout=STORE_TIMEOUT_SECONDS)
        if target.tls:
            # With a CA of its own (Memorystore's: "one or more unique Certificate Authorities"
            # per instance, https://cloud.google.com/memorystore/docs/redis/in-transit-encryption;
            # several PEMs in QUOTA_REDIS_CA_CERT during a rotation) that CA is the pin, and the
            # instance is reached by a private IP; with the system's CAs (a public Redis
            # service) the hostname is checked as for any TLS service.
            options.update(ssl_cert_reqs="required", ssl_ca_data=target.ca_cert,
                           ssl_check_hostname=target.ca_cert is None)
        self._options = options
        self._connection_class = redis.asyncio.SSLConnection if target.tls else redis.asyncio.Connection
        self._idle: list[redis.asyncio.Connection] = []
        self._closed = False

    async def _call(self, script: str, plan: Plan):
        """EVALSHA `script` over `plan` (EVAL once if the store does not know it yet); the
        reply, or StoreUnavailable."""
        keys, args = plan.keys, plan.args()

        async def evalsha(connection):
            try:
                await connection.send_command("EVALSHA", _sha(script), len(keys), *keys, *args)
                return await connection.read_response()
            except NoScriptError:  # a new or restarted store: send it whole (it caches it)
                await connection.send_command("EVAL", script, len(keys), *keys, *args)
                return await connection.read_response()
        return await self._on_connection(evalsha)

    async def _on_connection(self, commands):
        """Run `commands(connection)` on an idle (or new) connection within the bound."""
        connection = self._idle.pop() if self._idle else self._connection_class(**self._options)
        reusable = False
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                if not connection.is_connected:
                    await connection.connect()  # AUTH and SELECT, by redis-py
                reply = await commands(connection)
            reusable = True
            return reply
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        finally:
            if reusable and not self._closed and len(self._idle) < self.pool_size:
                self._idle.append(connection)
            else:  # failed, cut off mid-reply, or surplus: never reused
                await _drop(connection)

    async def reserve(self, plan: Plan) -> list[int]:
        """One atomic step: one from every window of `plan`, or (when any is full) from none.
        Returns the 1-based indices of the full windows; raises StoreUnavailable."""
        return list(await self._call(RESERVE_SCRIPT, plan))

    async def release(self, plan: Plan) -> None:
        """Give a reservation back (its mint failed); raises StoreUnavailable."""
        await self._call(RELEASE_SCRIPT, plan)

    async def warm(self) -> str | None:
        """At worker boot: open a connection and load the scripts, so the first request finds
        both ready. A store that cannot answer now is not a boot failure (each request then
        decides, fail closed or open); returns what went wrong, for one boot log line."""
        async def load(connection):
            for script in (RESERVE_SCRIPT, RELEASE_SCRIPT):
                await connection.send_command("SCRIPT", "LOAD", script)
                await connection.read_response()
        try:
            await self._on_connection(load)
        except StoreUnavailable as unavailable:
            return str(unavailable)
        return None

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await _drop(connection)


async def _drop(connection) -> None:
    try:
        await connection.disconnect(nowait=True)
    except Exception:  # noqa: BLE001 - a connection already broken is closed as far as it can be
        pass
