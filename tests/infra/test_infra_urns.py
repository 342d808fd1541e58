"""Upgrading a stack created before the package existed replaces nothing (issue 19 item 3).

fixtures/urns_before.json holds every URN the dev and prod stacks had before __main__.py
consumed the TokenEndpoint component (recorded from main at 0fe9054, the last commit before
the package landed, under the same mocks). Each must
still be a current URN, or an alias that a current resource declares: the engine then
treats the resource as the same one and neither creates nor deletes anything."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra_helpers import alias_urn, engine_urn

# Recorded with the mock monitor; compared in the engine's form (engine_urn).
BEFORE = {stack: [engine_urn(u) for u in urns]
          for stack, urns in json.loads((Path(__file__).parent / "fixtures" / "urns_before.json").read_text()).items()}
ENDPOINT = "outspeed-token:index:TokenEndpoint"


def claimed(run) -> dict[str, str]:
    """URN (current or aliased) -> the current URN that claims it."""
    out: dict[str, str] = {}
    for r in run["resources"]:
        for urn in [engine_urn(r["urn"]), *(alias_urn(r, a) for a in r["aliases"])]:
            assert out.setdefault(urn, r["urn"]) == r["urn"], f"{urn} claimed twice"
    return out


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_urn_of_the_old_program_is_kept_or_aliased(stack_runs, stack):
    now = claimed(stack_runs[stack])
    missing = [urn for urn in BEFORE[stack] if urn not in now]
    assert missing == [], f"{len(missing)} of {len(BEFORE[stack])} resources would be replaced: {missing}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_the_endpoint_itself_is_new_and_only_its_direct_children_move(stack_runs, stack):
    run = stack_runs[stack]
    old = set(BEFORE[stack])
    new = [r for r in run["resources"] if engine_urn(r["urn"]) not in old]
    # The endpoint is the one new resource; its children (token, edge, monitoring) moved
    # under it and say so with an alias; everything below them keeps its URN as it was.
    assert [r["type"] for r in new if not r["aliases"]] == [ENDPOINT]
    moved = sorted(r["name"] for r in new if r["aliases"])
    assert moved == (["edge", "monitoring", "token"] if stack == "prod" else ["monitoring", "token"])
    for r in new:
        for alias in r["aliases"]:
            assert alias_urn(r, alias) in old, (r["urn"], alias)


def test_alias_urn_follows_the_engine_rules():
    assert engine_urn("urn:pulumi:dev::p::pulumi:pulumi:Stack$a:b:C::x") == "urn:pulumi:dev::p::a:b:C::x"
    res = {"urn": "urn:pulumi:dev::p::outspeed-token:index:TokenEndpoint$a:b:C::token",
           "type": "a:b:C", "name": "token", "parent": "urn:pulumi:dev::p::outspeed-token:index:TokenEndpoint::x"}
    stack_urn = "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev"
    assert alias_urn(res, {"parentUrn": stack_urn}) == "urn:pulumi:dev::p::a:b:C::token"
    assert alias_urn(res, {"noParent": True}) == "urn:pulumi:dev::p::a:b:C::token"
    assert alias_urn(res, {"name": "old"}) == "urn:pulumi:dev::p::outspeed-token:index:TokenEndpoint$a:b:C::old"
    assert alias_urn(res, {"urn": "urn:x"}) == "urn:x"
