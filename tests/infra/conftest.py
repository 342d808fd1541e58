"""The infra tests run the real __main__.py under Pulumi mocks, each run in a fresh
interpreter (tools.plan.run_isolated, the same harness `make plan` uses)."""
from __future__ import annotations

import sys
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

from infra_helpers import run  # noqa: E402


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, dict[str, Any]]:
    """dev and prod with their own stack files plus a secret key, run side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {stack: pool.submit(run, stack) for stack in ("dev", "prod")}
        runs = {stack: f.result() for stack, f in futures.items()}
    for stack, result in runs.items():
        assert result["error"] is None, f"{stack}: {result['error']}"
    return runs


@pytest.fixture(scope="session")
def dev(stack_runs):
    return stack_runs["dev"]


@pytest.fixture(scope="session")
def prod(stack_runs):
    return stack_runs["prod"]
