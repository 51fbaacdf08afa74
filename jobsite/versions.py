"""The library versions this code was tested with, and what is installed.

Three modules replace or patch internals of the libraries under them, which a
minor release inside pyproject.toml's ranges can change without notice:

* ``scheduling/beat/scheduler.py``: django-celery-beat's ``DatabaseScheduler``
  (``setup_schedule``, ``schedule``, ``schedule_changed``,
  ``_get_unique_timezone_names``) and Celery's ``Scheduler`` (``tick``,
  ``populate_heap``, ``schedules_equal``, ``apply_entries``);
* ``scheduling/beat/lock.py``: Celery's ``Scheduler.reserve`` and ``tick``, and
  (through ``scheduling/beat/entry.py``) django-celery-beat's
  ``ModelEntry.__next__``;
* ``scheduling/broker.py``: kombu's ``Connection.collect`` and the Redis
  transport's ``Channel._create_client``, around Celery's consumer.

Each calls :func:`check_tested` when imported, with its range from ``TESTED``:
outside it, one warning at start names the package, its version, the tested
range and what is overridden. The lock (``uv.lock``, ``make lock``) pins a
version inside every range; tests/jobsite/test_versions.py fails when a new
lock leaves one, so whoever moves the lock reviews the overrides and then
widens the range here (docs/operations/dependencies.md).

``python -m jobsite.versions LOCKFILE`` compares the installed distributions
with an exported lock (``requirements/*.txt``): ``make venv`` proves with it
that the venv holds exactly the locked versions, ``make test-latest`` lists
what the newest allowed versions change.
"""
from __future__ import annotations

import logging
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

# The versions the overrides were tested with (a patch release is assumed to
# keep internals; a minor one is reviewed first).
TESTED = {
    "celery": ">=5.7,<5.8",
    "kombu": ">=5.7,<5.8",
    "django-celery-beat": ">=2.9,<2.10",
}

_warned: set[tuple[str, str]] = set()


def check_tested(package: str, spec: str, what: str) -> bool:
    """Whether the installed ``package`` is inside ``spec``, the versions
    ``what`` (the overridden internals, in words) was tested with.

    Otherwise log one warning, once per process for each (package, what), and
    return False. Never raises: a missing package or an unreadable version is
    a warning too.
    """
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        problem = f"{package} is not installed (no package metadata), so its version is unknown"
    else:
        try:
            inside = SpecifierSet(spec).contains(Version(installed), prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            inside = False
        if inside:
            return True
        problem = f"{package} {installed} is not a version this code was tested with ({spec})"
    key = (canonicalize_name(package), what)
    if key not in _warned:
        _warned.add(key)
        logger.warning(
            "%s. It overrides %s, which may have changed: check them against this release, "
            "then widen the range in jobsite/versions.py (docs/operations/dependencies.md).",
            problem, what)
    return False


# ---------------------------------------------------------------------------
# Installed distributions against an exported lock
# ---------------------------------------------------------------------------
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;([^\\]*))?")
# Installers' own tools, which no lock lists (pip freeze leaves them out too).
_TOOLS = {"pip", "setuptools", "wheel", "distribute"}


def locked_versions(requirements: Path) -> dict[str, str]:
    """``name -> version`` of every pin in an exported lock (uv export's
    requirements format) whose environment marker holds here."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = _PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        if marker and marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        pins[canonicalize_name(name)] = version
    return pins


def installed_versions() -> dict[str, str]:
    """``name -> version`` of every distribution installed here, but the
    project itself and the installers' own tools."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonicalize_name(name)] = dist.version
    return {name: version for name, version in found.items() if name not in _TOOLS | {"jobsite"}}


def lock_differences(requirements: Path) -> dict[str, tuple[str | None, str | None]]:
    """``name -> (locked, installed)`` for every package where the two differ
    (None: not in the lock / not installed)."""
    locked, installed = locked_versions(requirements), installed_versions()
    return {
        name: (locked.get(name), installed.get(name))
        for name in sorted(locked.keys() | installed.keys())
        if locked.get(name) != installed.get(name)
    }


def main(argv: list[str]) -> int:
    """Print how the installed versions differ from the lock. Exit 1 when a
    locked package is missing or at another version; packages the lock does
    not list (installed by hand) are only listed."""
    if len(argv) != 1:
        print("usage: python -m jobsite.versions requirements/FILE.txt", file=sys.stderr)
        return 2
    requirements = Path(argv[0])
    differences = lock_differences(requirements)
    pinned = len(locked_versions(requirements))
    if not differences:
        print(f"Installed = {requirements}: {pinned} packages at the locked versions.")
        return 0
    different = {name: pair for name, pair in differences.items() if pair[0] is not None}
    extra = {name: pair for name, pair in differences.items() if pair[0] is None}
    if different:
        print(f"Installed versions that differ from {requirements}:")
        for name, (locked, installed) in different.items():
            print(f"  {name:40} locked {locked:14} installed {installed or '-'}")
    if extra:
        print(f"Installed, not in {requirements}: "
              + ", ".join(f"{name} {installed}" for name, (_, installed) in extra.items()))
    if not different:
        print(f"Every one of the {pinned} locked packages is installed at its locked version.")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
