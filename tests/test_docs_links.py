"""The docs cannot rot: every relative link and #anchor in README.md and docs/*.md resolves,
every docs page is reachable from the README, and every runbook the alerts link to exists in
docs/operations.md under the anchor the monitoring component emits."""
from __future__ import annotations

from pathlib import Path

import pytest

from outspeed_token.monitoring import MonitoringSettings, alert_specs, documentation
from tools.doc_anchors import anchors, broken_links, file_anchors, is_external, links, slug

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPERATIONS = ROOT / "docs" / "operations.md"


def every_alert():
    """Every alert the component can create: edge, caller checks and quotas all on."""
    return alert_specs(MonitoringSettings(caller_checks=True), "svc", "requests", "armor", "quota")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page, ROOT) == []


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for link in links(page.read_text(encoding="utf-8")):
            path = link.target.partition("#")[0]
            target = (page.parent / path).resolve()
            if path and not is_external(link.target) and path.endswith(".md") and target.exists():
                todo.append(target)  # a missing page is the link test's failure, not this one's
    orphans = [p.relative_to(ROOT) for p in PAGES if p.resolve() not in reached]
    assert orphans == []


def test_every_runbook_anchor_the_alerts_emit_is_in_operations_md():
    offered = file_anchors(OPERATIONS)
    specs = every_alert()
    assert len(specs) == 9  # the three base alerts, spend, Armor, two caller alerts, two quota alerts
    for spec in specs:
        assert spec.anchor in offered, spec.anchor
        # the runbook heading is the alert's own title, so the anchor is its GitHub slug
        assert slug(spec.title) == spec.anchor


def test_alert_documentation_links_the_runbook_in_operations_md():
    url = "https://github.com/acme/outspeed-token/blob/main/docs/operations.md"
    for spec in every_alert():
        doc = documentation(spec, url)
        assert f"]({url}#{spec.anchor})" in doc
        assert "docs/operations.md" in doc
        assert "docs/operations.md" in documentation(spec, "")  # without runbookUrl it names the page


@pytest.mark.parametrize("heading, expected", [
    ("Quick start", "quick-start"),
    ("Review before deploying: `make plan`", "review-before-deploying-make-plan"),
    ("dev and prod vs Outspeed's agent modes", "dev-and-prod-vs-outspeeds-agent-modes"),
    ("The edge (prod)", "the-edge-prod"),
    ("`make plan STACK=dev|prod`", "make-plan-stackdevprod"),
    ("snake_case and a-dash", "snake_case-and-a-dash"),
    ("See [the API](api.md) **now**", "see-the-api-now"),
    ("Two  spaces", "two--spaces"),
])
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_repeated_headings_get_numbered_and_code_blocks_are_not_headings():
    page = "# Title\n## Logs\n### Logs\n```sh\n# Logs\n```\n## Logs\n<a id=\"custom\"></a>\n"
    assert anchors(page) == {"title", "logs", "logs-1", "logs-2", "custom"}


def test_the_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n## Here\n")
    page = tmp_path / "README.md"
    page.write_text("# R\n[ok](docs/a.md#here) [self](#r) [web](https://example.com/x#y)\n"
                    "[gone](docs/b.md) [anchor](docs/a.md#there) [own](#nowhere)\n"
                    "`[code](docs/c.md)`\n```\n[fenced](docs/d.md)\n```\n[up](../outside.md)\n")
    problems = broken_links(page, tmp_path)
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "docs/b.md", "docs/a.md#there", "#nowhere", "../outside.md"]
