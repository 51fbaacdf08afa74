"""The pages a reader meets: the README, then the documentation site in its nav order."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Pages other helpers own; the site links them, these tests do not run or word-check them.
FOREIGN_PAGES = {"architecture.md", "benchmarks.md", "operations/dependencies.md"}


def nav_pages() -> list[str]:
    """docs/-relative paths of the site's pages, in nav order."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node):
        if isinstance(node, str):
            if node.endswith(".md"):
                found.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    return found


def reader_pages() -> list[Path]:
    """README.md and every site page, in the order a reader follows them."""
    pages = [ROOT / "README.md", *(DOCS / page for page in nav_pages())]
    return [page for page in pages if page.exists()]  # (a missing one fails test_every_page_under_docs_is_in_the_nav)


def own_pages() -> list[Path]:
    return [page for page in reader_pages() if str(page.relative_to(ROOT)).removeprefix("docs/") not in FOREIGN_PAGES]
