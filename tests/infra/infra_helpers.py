"""Lookups over a mock run's result (tools.plan.run_program's dict). A uniquely named module,
not conftest, so test modules can import it whatever other conftest.py files exist."""
from __future__ import annotations

from typing import Any

TEST_API_KEY = "osk-test-7c1e9a54f0b24d8e-not-a-real-key"


def of_type(run: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in run["resources"] if r["type"] == type_]


def one(run: dict[str, Any], type_: str) -> dict[str, Any]:
    found = of_type(run, type_)
    assert len(found) == 1, f"expected one {type_}, found {[r['name'] for r in found]}"
    return found[0]


def by_name(run: dict[str, Any], name: str) -> dict[str, Any]:
    found = [r for r in run["resources"] if r["name"] == name]
    assert len(found) == 1, name
    return found[0]


def urn_of(run: dict[str, Any], name: str) -> str:
    return by_name(run, name)["urn"]
