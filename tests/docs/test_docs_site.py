"""The documentation site builds strictly, the README stays short and true, and
the configuration page names every setting the code reads."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.docs.pages import DOCS, FOREIGN_PAGES, ROOT, nav_pages, own_pages, settings_environment_variables

README = ROOT / "README.md"
CONFIGURATION = DOCS / "operations" / "configuration.md"


def test_the_settings_scan_finds_the_settings():
    # (the scan below is only as good as this: a few names from different modules)
    assert {"DEBUG", "DATABASE_URL", "REDIS_URL", "JOBS_CATCH_UP_MAX", "VISION_OCR",
            "WORKFLOWS_MAX_STEPS", "PREDICTIONS_MAX_UPLOAD_MB"} <= settings_environment_variables()


def test_the_configuration_page_names_every_environment_variable():
    page = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(name for name in settings_environment_variables() if f"`{name}`" not in page)
    assert missing == [], f"docs/operations/configuration.md does not document {missing}"


def test_readme_is_short_and_its_opening_true():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "not available yet" not in text
    for built in ("/api/cron/jobs", "/cron-jobs", "/api/v1/predictions", "/api/v1/jobs"):
        assert built in text


@pytest.mark.parametrize("page", own_pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_pages_use_product_words(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"\bseeds?\s+0\d\d", text, re.I), "a seed number where a user reads"


def test_every_page_under_docs_is_in_the_nav():
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert pages - set(nav_pages()) == set()
    assert set(nav_pages()) - pages == set(), "the nav names a page that does not exist"
    assert len(nav_pages()) == len(set(nav_pages())), "a page is twice in the nav"
    assert FOREIGN_PAGES <= set(nav_pages())


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "operations" / "configuration" / "index.html").exists()


def test_the_readmes_links_and_picture_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [target.split("#")[0] for target in targets if not re.match(r"[a-z]+://", target)]
    assert "docs/images/dashboard.png" in local
    assert [target for target in local if not (ROOT / target).exists()] == []
