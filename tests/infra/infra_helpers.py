"""Running the program for tests, and lookups over a run's result (tools.plan.run_program's
dict). A uniquely named module, not conftest, so test modules can import it whatever other
conftest.py files exist.

The stack files are the user's to edit (README: `pulumi config set domain ...`), so tests
read the stack's expected values from the file (through the separately unit-tested
settings parser) rather than hard-coding the shipped examples, and pin only what a user's
machine adds: gcp:project and gcp:region.
"""
from __future__ import annotations

from typing import Any, Optional

from outspeed_token import stackfiles
from outspeed_token.settings import Settings, parse_mapping
from tools.plan import PLACEHOLDER_PROJECT, run_isolated

TEST_API_KEY = "osk-test-7c1e9a54f0b24d8e-not-a-real-key"
REGION = "us-central1"


def run(stack: str, overrides: Optional[dict[str, Any]] = None, **kwargs) -> dict[str, Any]:
    """The real __main__.py in a fresh interpreter, with the test key and a pinned project/region."""
    pinned = {"gcp:project": PLACEHOLDER_PROJECT, "gcp:region": REGION, **(overrides or {})}
    kwargs.setdefault("api_key", TEST_API_KEY)
    return run_isolated(stack, pinned, **kwargs)


def stack_settings(stack: str) -> Settings:
    """What Pulumi.<stack>.yaml (plus Pulumi.yaml defaults) asks for."""
    return parse_mapping(stackfiles.project_values(stackfiles.stack_config(stack)))


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


def engine_urn(urn: str) -> str:
    """A URN as the engine writes it. The mock monitor (pulumi.runtime.mocks.MockMonitor.make_urn)
    puts the root stack's type in front of top-level resources' types; the engine never does
    (a parent that is the root stack adds no parent type: pkg/resource/deploy's collapseAliasToUrn
    and the resource monitor both drop it)."""
    return urn.replace("::pulumi:pulumi:Stack$", "::", 1)


def _type_of(urn: str) -> str:
    """The resource's own type (the last `$` segment of the URN's qualified type)."""
    return urn.split("::")[2].split("$")[-1]


def alias_urn(resource: dict[str, Any], alias: dict[str, Any]) -> str:
    """The URN an alias stands for, as the engine computes it from an alias spec: every field
    the spec leaves empty is the resource's own (name, type, stack, project, parent); a parent
    that is the stack itself (or noParent) adds no parent type to the qualified type."""
    if "urn" in alias:
        return alias["urn"]
    stack, project = resource["urn"].split("::")[0].split(":")[-1], resource["urn"].split("::")[1]
    parent = "" if alias.get("noParent") else alias.get("parentUrn", resource["parent"])
    type_ = alias.get("type", resource["type"])
    if parent and _type_of(parent) != "pulumi:pulumi:Stack":
        type_ = f"{_type_of(parent)}${type_}"
    return f"urn:pulumi:{alias.get('stack', stack)}::{alias.get('project', project)}::{type_}::{alias.get('name', resource['name'])}"
