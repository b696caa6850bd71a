"""Every relative link of the README and docs/ resolves: the file exists, and so does the heading
an anchor names (GitHub's slugs). Nothing points outside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def _links(page: Path) -> list[str]:
    return _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        path_part, _, anchor = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.exists() or (ROOT.resolve() not in target.parents and target != ROOT.resolve()):
            broken.append(f"{link} (no such file in the repository)")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading #{anchor} in {target.name})")
    assert broken == []


def test_the_check_catches_a_broken_link(tmp_path: Path) -> None:
    assert _slug("While psmon up runs") == "while-psmon-up-runs"
    assert _slug("Loading history (psmon replay)") == "loading-history-psmon-replay"
    assert _slug("`psmon.History` from a notebook") == "psmonhistory-from-a-notebook"
    page = tmp_path / "p.md"
    page.write_text("# Title\n[a](missing.md) [b](#title) [c](#nope)\n```\n[d](inside-a-fence.md)\n```\n")
    assert _links(page) == ["missing.md", "#title", "#nope"]
    assert "nope" not in _anchors(page) and "title" in _anchors(page)
