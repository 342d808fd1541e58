"""Headings, anchors and links of the project's markdown, as GitHub renders them.

Shared by tests/test_docs_links.py (every relative link and #anchor resolves) and the
monitoring tests (every alert's runbook anchor exists in docs/operations.md), so both read
anchors the same way GitHub does.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, NamedTuple

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_EXPLICIT = re.compile(r"""<a\s+(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_TAG = re.compile(r"<[^>]+>")


def slug(text: str) -> str:
    """GitHub's heading anchor (github-slugger): the rendered text, lower-cased, every character
    that is not a letter, digit, space, `-` or `_` removed, each space turned into `-`."""
    text = _INLINE_CODE.sub(lambda m: m.group(2), text)  # `code` renders as its text
    text = _LINK.sub(lambda m: m.group(1), text)         # [text](url) renders as text
    text = _TAG.sub("", text).replace("**", "").replace("*", "")
    return "".join(c for c in text.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _lines_outside_fences(markdown: str) -> Iterator[tuple[int, str]]:
    fence = None
    for number, line in enumerate(markdown.splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)[0]
        elif fence is not None and opened and opened.group(1)[0] == fence:
            fence = None
        elif fence is None:
            yield number, line


def anchors(markdown: str) -> set[str]:
    """Every anchor a page offers: heading slugs (a repeated slug gets -1, -2, ... as on GitHub)
    and explicit `<a id="...">` / `<a name="...">`."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _lines_outside_fences(markdown):
        found.update(_EXPLICIT.findall(line))
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def file_anchors(path: Path) -> set[str]:
    return anchors(path.read_text(encoding="utf-8"))


class Link(NamedTuple):
    line: int
    target: str  # as written: "docs/api.md#logs", "#quick-start", "https://..."


def links(markdown: str) -> list[Link]:
    """Markdown links outside code blocks and inline code."""
    found = []
    for number, line in _lines_outside_fences(markdown):
        line = _INLINE_CODE.sub("", line)
        found.extend(Link(number, m.group(2)) for m in _LINK.finditer(line))
    return found


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))


def broken_links(page: Path, root: Path) -> list[str]:
    """Every relative link of `page` whose file is missing (or outside `root`), or whose
    `#anchor` is not an anchor of the markdown page it names. Empty when all resolve."""
    problems = []
    own = page.read_text(encoding="utf-8")
    for link in links(own):
        if is_external(link.target):
            continue
        path, _, anchor = link.target.partition("#")
        where = f"{page.relative_to(root)}:{link.line}: {link.target}"
        target = (page.parent / path).resolve() if path else page.resolve()
        if root.resolve() not in (target, *target.parents):
            problems.append(f"{where}: points outside the repository")
            continue
        if not target.exists():
            problems.append(f"{where}: {path} does not exist")
            continue
        if anchor:
            if target.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif anchor not in (anchors(own) if not path else file_anchors(target)):
                problems.append(f"{where}: no heading or <a id> gives #{anchor}")
    return problems
