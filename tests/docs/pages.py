"""The pages a reader meets: the README, then the documentation site in its nav order."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Pages other helpers own; the site links them, these tests do not run or word-check them.
FOREIGN_PAGES = {"architecture.md", "benchmarks.md", "operations/dependencies.md"}
# docs/guides/ is written by helper "time and code" (issue 28): linked in the nav, not run or word-checked here.
FOREIGN_FOLDERS = ("guides/",)


def is_foreign(page: str) -> bool:
    """``page``: a docs/-relative path."""
    return page in FOREIGN_PAGES or page.startswith(FOREIGN_FOLDERS)


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
    return [page for page in reader_pages() if not is_foreign(str(page.relative_to(ROOT)).removeprefix("docs/"))]


def settings_environment_variables() -> set[str]:
    """Every name jobsite/settings/* reads from the environment: the first
    argument of ``env(...)``, ``env.<type>(...)``, ``os.environ.get(...)``,
    ``os.getenv(...)`` and ``os.environ[...]``."""
    names = set()
    for module in (ROOT / "jobsite" / "settings").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                function = ast.unparse(node.func)
                reads_env = (function == "env" or function.startswith("env.") or function in {
                    "os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.setdefault"})
                if reads_env and isinstance(node.args[0].value, str):
                    names.add(node.args[0].value)
            if (isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
                    and isinstance(node.slice, ast.Constant)):
                names.add(node.slice.value)
    return {name for name in names if re.fullmatch(r"[A-Z][A-Z0-9_]+", name)}
