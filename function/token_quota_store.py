"""The quota store's I/O (DESIGN.md, "Spend ceiling"): redis-py's asyncio client, one pool per
process, two Lua scripts (token_quota's), and the store's time bound.

Imported only when quotas are configured, by the worker's boot (main.py's lifespan): redis-py
costs about 65 ms of import, which the no-quota path never pays. The bound: no reply within
STORE_TIMEOUT_SECONDS (connect or command, retries off) means the store cannot answer; the
caller then answers 503 quota_unavailable (or mints, when QUOTA_FAIL_OPEN is true).

Nothing here ever puts the store's password into a message: a failure is reported by the
exception's class name only (redis-py's own messages can quote connection details).
"""
from __future__ import annotations

import asyncio

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from token_quota import RELEASE_SCRIPT, RESERVE_SCRIPT, Plan, StoreUnavailable
from token_settings import RedisTarget

# "The store cannot answer": no reply within this (connect or command), and the request is
# still answered within 2 s in all (DESIGN.md).
STORE_TIMEOUT_SECONDS = 1.0


def client(target: RedisTarget, pool_size: int) -> redis.asyncio.Redis:
    options = {}
    if target.tls:
        # With a CA of its own (Memorystore's, one per instance) that CA is the pin, and the
        # instance is reached by a private IP its certificate does not name; with the system's
        # CAs (a public Redis service) the hostname is checked as for any TLS service.
        options = dict(ssl=True, ssl_cert_reqs="required", ssl_ca_data=target.ca_cert,
                       ssl_check_hostname=target.ca_cert is None)
    pool = redis.asyncio.BlockingConnectionPool(
        host=target.host, port=target.port, db=target.db, username=target.username, password=target.password,
        socket_connect_timeout=STORE_TIMEOUT_SECONDS, socket_timeout=STORE_TIMEOUT_SECONDS,
        # One attempt: a retry would only spend the request's bound on a store that did not answer.
        retry=Retry(NoBackoff(), 0),
        # One connection per concurrent request at most (THREADS); a request beyond that waits
        # for one, inside the same bound.
        max_connections=pool_size, timeout=STORE_TIMEOUT_SECONDS,
        connection_class=redis.asyncio.SSLConnection if target.tls else redis.asyncio.Connection,
        **options)
    return redis.asyncio.Redis(connection_pool=pool)


class Store:
    """One per process (its connections are shared by every request)."""

    def __init__(self, target: RedisTarget, pool_size: int):
        self.redis = client(target, pool_size)
        self._reserve = self.redis.register_script(RESERVE_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)

    async def _bounded(self, script, plan: Plan):
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                return await script(keys=plan.keys, args=plan.args())
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def reserve(self, plan: Plan) -> list[int]:
        """One atomic step: one from every window of `plan`, or (when any is full) from none.
        Returns the 1-based indices of the full windows; raises StoreUnavailable."""
        return list(await self._bounded(self._reserve, plan))

    async def release(self, plan: Plan) -> None:
        """Give a reservation back (its mint failed); raises StoreUnavailable."""
        await self._bounded(self._release, plan)

    async def warm(self) -> str | None:
        """At worker boot: open a connection and load the scripts, so the first request finds
        them ready. A store that cannot answer now is not a boot failure (each request then
        decides, fail closed or open); returns what went wrong, for one boot log line."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                await self.redis.script_load(RESERVE_SCRIPT)
                await self.redis.script_load(RELEASE_SCRIPT)
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            return type(exc).__name__
        return None

    async def close(self) -> None:
        await self.redis.aclose()
