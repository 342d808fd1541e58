"""Physical names of the Google Cloud resources a stack creates (pure): lower-case and
dash-separated, cut to each API's length limit, with a short hash where a cut could make two
stacks' names collide. Imported by every component, so it sits at the bottom of the layers."""
from __future__ import annotations

import hashlib
import re


def physical_name(*parts: str, max_len: int = 63) -> str:
    """A lower-case, dash-separated GCP name from parts, trimmed to max_len."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name[:1].isalpha():
        name = "x" + name
    return name[:max_len].rstrip("-")


def unique_name(base: str, suffix: str = "", *, max_len: int) -> str:
    """physical_name(base, suffix) where it fits (unchanged names); when it does not, the base is
    cut and a short hash of the whole name keeps two long names that share a start apart."""
    full = physical_name(*(p for p in (base, suffix) if p), max_len=10_000)
    if len(full) <= max_len:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:6]
    room = max_len - len(digest) - 1 - (len(suffix) + 1 if suffix else 0)
    return physical_name(full[:room], digest, *((suffix,) if suffix else ()), max_len=max_len)


def stack_prefix(project: str, stack: str) -> str:
    """The physical-name prefix of a stack's resources, e.g. "outspeed-token-prod"."""
    return unique_name(f"{project}-{stack}", max_len=40)


def account_id(prefix: str, role: str) -> str:
    # Account ids are 6-30 characters (iam.v1 CreateServiceAccountRequest.accountId).
    return unique_name(prefix, role, max_len=30)
