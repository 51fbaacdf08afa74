"""No dependency without a use, and no use without a dependency.

Every package pyproject.toml lists (the runtime and every extra) is imported
by the project's code or tests, or is one of the few used another way (a
command line, a plugin, a Django setting) with the place that uses it. And
every third-party module the code or tests import comes from a package
pyproject.toml lists: one that is only there because another package needs it
today is gone from a fresh install the day that package stops needing it.
"""
import ast
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("jobsite", "scheduling", "vision_pipeline", "predictions", "tests", "benchmarks")
FIRST_PARTY = {*SOURCES, "manage"}

# Packages used without an import: (the file that uses them, what it says there).
USED_WITHOUT_IMPORT = {
    "gunicorn": ("Dockerfile", 'CMD ["gunicorn", "jobsite.wsgi:application"'),  # the production web server
    "flower": ("jobsite/management/commands/runstack.py", '"flower"'),  # `celery flower`
    "psycopg": ("jobsite/settings/database.py", "postgres://"),  # Django's PostgreSQL backend
    "django-filter": ("jobsite/settings/api.py", "django_filters.rest_framework.DjangoFilterBackend"),
    "drf-spectacular-sidecar": ("jobsite/settings/base.py", '"drf_spectacular_sidecar"'),  # an app: static files
    "onnxruntime": ("vision_pipeline/analyzers/ocr.py", 'find_spec("onnxruntime")'),  # rapidocr's engine
    "pytest-django": ("pyproject.toml", 'DJANGO_SETTINGS_MODULE = "jobsite.settings"'),  # a pytest plugin
    "pytest-timeout": ("pyproject.toml", "timeout = "),  # a pytest plugin
    "pytest-xdist": ("Makefile", "--dist loadgroup"),  # a pytest plugin
    "mkdocs-material": ("mkdocs.yml", "name: material"),  # `make docs`
}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {canonicalize_name(Requirement(requirement).name) for requirement in requirements}


@cache
def owners() -> dict[str, str]:
    """Installed module ('/'-separated: ``yaml``, ``opentelemetry/trace``) -> its distribution."""
    found = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            path = file.as_posix()
            if path.endswith("/__init__.py"):
                module = path.removesuffix("/__init__.py")
            elif path.endswith(".py"):
                module = path.removesuffix(".py")
            elif path.endswith((".so", ".pyd")):  # yaml/_yaml.cpython-311-x86_64-linux-gnu.so
                module = path.split(".")[0]
            else:
                continue
            found[module] = canonicalize_name(dist.metadata["Name"])
    return found


def owner(module: str) -> str | None:
    """The distribution that installs ``module``, or the nearest parent package it installs."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        dist = owners().get("/".join(parts[:end]))
        if dist:
            return dist
    return None


def third_party_imports() -> dict[str, set[str]]:
    """Imported module (the longest name a distribution can own) -> the files importing it."""
    found: dict[str, set[str]] = {}
    files = [path for source in SOURCES for path in (ROOT / source).rglob("*.py")] + [ROOT / "manage.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from opentelemetry import trace`: a namespace package owns nothing, its submodule does
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                    continue
                found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_comes_from_a_listed_package():
    listed = declared()
    unlisted = {}
    for module, files in third_party_imports().items():
        dist = owner(module)
        if dist not in listed:
            unlisted[module] = (dist or "not installed", sorted(files)[:3])
    assert unlisted == {}, "list these in pyproject.toml (then make lock): module -> (package, imported by)"


def test_every_listed_package_has_a_use():
    imported = {owner(module) for module in third_party_imports()}
    unused = declared() - imported - set(USED_WITHOUT_IMPORT)
    assert unused == set(), "imported nowhere: remove from pyproject.toml, or add to USED_WITHOUT_IMPORT with its use"


def test_each_package_used_without_an_import_is_still_used_there():
    listed = declared()
    for package, (path, needle) in USED_WITHOUT_IMPORT.items():
        assert package in listed, package
        assert needle in (ROOT / path).read_text(encoding="utf-8"), (package, path, needle)
