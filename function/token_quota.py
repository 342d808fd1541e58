"""Mint budgets, decided (DESIGN.md, "Spend ceiling"): pure functions, no I/O.

A request that passed every other check takes one mint from each of its windows: every
per-caller window (keyed by a hash of the verified ID-token subject) and every global window.
Windows are fixed and aligned to the epoch (a window of N seconds starts at each multiple of N),
so every instance names the same key for the same window without talking to the others. This
module names the keys and reads the store's answer; token_quota_store does the one atomic
reservation in the store (redis), and gives it back when the mint then fails.
"""
from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

from token_policy import Rejection
from token_settings import Quotas, Window

# How long a client should wait when the store cannot answer.
UNAVAILABLE_RETRY_AFTER = 5
# Keys outlive their window by this much (instances' clocks differ by far less), then expire.
KEY_GRACE_SECONDS = 5


class Slot(NamedTuple):
    """One window of one budget, for this request: its key in the store, its limit, how long
    the key must live, and how long until the window resets."""
    budget: str  # "caller" or "global": which budget refuses, for the log line
    key: str
    limit: int
    ttl: int
    reset_in: int


class Plan(NamedTuple):
    slots: tuple[Slot, ...]

    @property
    def keys(self) -> list[str]:
        return [slot.key for slot in self.slots]

    def args(self) -> list[int]:
        """The reservation script's ARGV: every limit, then every key's time to live."""
        return [slot.limit for slot in self.slots] + [slot.ttl for slot in self.slots]


class Exceeded(NamedTuple):
    budget: str  # "caller" when any per-caller window refused, else "global"
    retry_after: int

    @property
    def rejection(self) -> Rejection:
        return Rejection("quota_exceeded", (("Retry-After", str(self.retry_after)),))


class StoreUnavailable(Exception):
    """The store did not answer in time, refused the connection or the password, or failed;
    the message is a class name, never connection details (token_quota_store raises it)."""


UNAVAILABLE = Rejection("quota_unavailable", (("Retry-After", str(UNAVAILABLE_RETRY_AFTER)),))


def subject_id(subject: str) -> str:
    """What names a caller in the store: a hash of the subject, never the subject itself (a
    store dump must not list the endpoint's users)."""
    return hashlib.sha256(b"outspeed-token/caller\0" + subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _slot(budget: str, base: str, window: Window, now: float) -> Slot:
    index = math.floor(now / window.seconds)
    reset_in = max(1, math.ceil((index + 1) * window.seconds - now))
    return Slot(budget, f"{base}:{window.seconds}:{index}", window.count, reset_in + KEY_GRACE_SECONDS, reset_in)


def plan(quotas: Quotas, subject: str | None, now: float) -> Plan:
    """The windows this request takes from, at `now` (seconds since the epoch). Without a
    subject (no ID-token check) there are no per-caller windows (settings refuse per-caller
    budgets without ID tokens)."""
    prefix = quotas.key_prefix
    slots = []
    if subject is not None:
        base = f"{prefix}:quota:caller:{subject_id(subject)}"
        slots += [_slot("caller", base, window, now) for window in quotas.per_caller]
    slots += [_slot("global", f"{prefix}:quota:global", window, now) for window in quotas.global_]
    return Plan(tuple(slots))


def decide(plan: Plan, refused: list[int]) -> Exceeded | None:
    """The store's answer (1-based indices of the windows that were full; empty = reserved)
    -> None (granted) or which budget refused and when to retry: the longest wait among the
    refusing windows (the request can only pass once all of them have reset)."""
    if not refused:
        return None
    slots = [plan.slots[int(i) - 1] for i in refused]
    budget = "caller" if any(slot.budget == "caller" for slot in slots) else "global"
    return Exceeded(budget, max(slot.reset_in for slot in slots))


# All windows in one atomic step: check every window, then take one from all of them or from
# none. Returns the 1-based indices of the full windows (an empty list: reserved). A new key
# gets its expiry once; keys name their window, so they are never reused after it.
RESERVE_SCRIPT = """
local n = #KEYS
local full = {}
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[i]) then full[#full + 1] = i end
end
if #full > 0 then return full end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[n + i]) end
end
return full
"""

# A mint that failed gives its reservation back: one from each window that still holds it
# (an expired window is not recreated, and never goes below zero).
RELEASE_SCRIPT = """
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""
