"""The guard on the library internals we override (jobsite/versions.py): one
warning, never an exception, outside the tested versions; and the lock keeps
every guarded package inside its tested range."""
import json
import logging
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from django.conf import settings
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from jobsite import versions

BASE_DIR = Path(settings.BASE_DIR)


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    """Each test starts as a new process would: nothing warned yet."""
    monkeypatch.setattr(versions, "_warned", set())


def guard_warnings(caplog):
    return [r for r in caplog.records if r.name == "jobsite.versions" and r.levelno == logging.WARNING]


def test_a_version_outside_the_tested_range_logs_one_warning_naming_everything(caplog):
    installed = metadata.version("celery")
    caplog.set_level(logging.WARNING, logger="jobsite.versions")

    assert versions.check_tested("celery", "<1", "celery.beat.Scheduler.tick (here)") is False
    assert versions.check_tested("celery", "<1", "celery.beat.Scheduler.tick (here)") is False

    [record] = guard_warnings(caplog)
    message = record.getMessage()
    for part in ("celery", installed, "<1", "celery.beat.Scheduler.tick (here)", "jobsite/versions.py"):
        assert part in message
    assert record.exc_info is None and "Traceback" not in message


def test_each_override_gets_its_own_warning(caplog):
    caplog.set_level(logging.WARNING, logger="jobsite.versions")
    versions.check_tested("kombu", "<1", "Connection.collect")
    versions.check_tested("kombu", "<1", "Channel._create_client")
    assert [r.getMessage().count("kombu") > 0 for r in guard_warnings(caplog)] == [True, True]


def test_a_version_inside_the_tested_range_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="jobsite.versions")
    installed = metadata.version("kombu")
    assert versions.check_tested("kombu", f"=={installed}", "Connection.collect") is True
    assert versions.check_tested("kombu", versions.TESTED["kombu"], "Connection.collect") is True
    assert guard_warnings(caplog) == []


@pytest.mark.parametrize("package, spec", [
    ("jobsite-no-such-package", ">=1"),  # not installed
    ("celery", "not a range"),  # a range nobody can read
])
def test_what_cannot_be_checked_is_a_warning_not_a_crash(caplog, package, spec):
    caplog.set_level(logging.WARNING, logger="jobsite.versions")
    assert versions.check_tested(package, spec, "something") is False
    [record] = guard_warnings(caplog)
    assert package in record.getMessage()


def test_the_lock_pins_every_guarded_package_inside_its_tested_range():
    """Fails when `make lock` moves celery, kombu or django-celery-beat past the
    versions the overrides were tested with: review them, then widen TESTED."""
    lock = tomllib.loads((BASE_DIR / "uv.lock").read_text())
    pinned = {package["name"]: package["version"] for package in lock["package"]}
    exported = versions.locked_versions(BASE_DIR / "requirements" / "dev.txt")
    for package, spec in versions.TESTED.items():
        assert Version(pinned[package]) in SpecifierSet(spec), (package, pinned[package], spec)
        assert exported[package] == pinned[package]


def test_the_overriding_modules_check_their_versions_when_imported(tmp_path):
    """A real start (a fresh process importing the beat and broker modules):
    with the installed (locked) versions, no warning; with ranges that exclude
    them, one warning per override, naming it, and no traceback."""
    code = """
import json, logging, sys
from jobsite import versions
if sys.argv[1] == "untested":
    versions.TESTED.update({name: "<1" for name in versions.TESTED})
seen = []
handler = logging.Handler()
handler.emit = lambda record: seen.append(record.getMessage())
logging.getLogger("jobsite.versions").addHandler(handler)
import django
django.setup()
import scheduling.beat.lock, scheduling.broker
print(json.dumps(seen))
"""
    env = {**os.environ, "JOBSITE_VAR_DIR": str(tmp_path)}

    def start(mode):
        done = subprocess.run([sys.executable, "-c", code, mode], cwd=BASE_DIR, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert start("tested") == []
    warned = start("untested")
    assert len(warned) == 6  # two checks in each of scheduler.py, lock.py and broker.py
    assert sum("celery " in message and "celery.beat.Scheduler's tick" in message for message in warned) == 1
    assert any(message.startswith("kombu ") and "Connection.collect" in message for message in warned)
    assert any(message.startswith("django-celery-beat ") and "ModelEntry.__next__" in message for message in warned)


def test_the_lock_comparison_reports_what_differs(tmp_path, capsys):
    packaging_version = metadata.version("packaging")
    celery_version = metadata.version("celery")
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# exported\n"
        f"packaging=={packaging_version} \\\n    --hash=sha256:00\n"
        f"celery=={celery_version}.post9 \\\n    --hash=sha256:00\n"
        "jobsite-windows-only==1.0 ; sys_platform == 'win32' \\\n    --hash=sha256:00\n"
    )

    assert versions.locked_versions(lock) == {"packaging": packaging_version, "celery": f"{celery_version}.post9"}
    assert versions.lock_differences(lock)["celery"] == (f"{celery_version}.post9", celery_version)
    assert "packaging" not in versions.lock_differences(lock)
    assert versions.main([str(lock)]) == 1
    out = capsys.readouterr().out
    assert "celery" in out and f"{celery_version}.post9" in out

    lock.write_text(f"packaging=={packaging_version}\ncelery=={celery_version}\n")
    assert versions.main([str(lock)]) == 0  # only unlisted extras: listed, not a failure
    assert "Every one of the 2 locked packages" in capsys.readouterr().out
