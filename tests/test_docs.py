"""The repository stands alone: no file points outside it, and every link in the README and
docs/ leads to a file or heading that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [REPO / name for name in listed.splitlines() if not name.startswith(".ci/")]


PRIVATE_NOTES = re.compile(r"shared/|bkmonitor\.md|anchors\.md|bytewax-notes")
"""Names of notes that live outside the repository: a user who clones it cannot read them."""


def test_no_file_refers_to_notes_outside_the_repository():
    outside = [
        path.relative_to(REPO)
        for path in tracked_files()
        if path.is_file()
        and path != Path(__file__)
        and PRIVATE_NOTES.search(path.read_text(errors="replace"))
    ]
    assert outside == []


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_leads_somewhere(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


def test_the_readme_links_every_docs_page():
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(PAGES[0].read_text())}
    assert {p.name for p in PAGES[1:]} <= linked
