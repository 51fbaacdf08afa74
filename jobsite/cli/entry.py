"""``./manage``'s entry (manage.py calls ``main``): Django's command line, with
every known failure of every command as one line and a conventional exit code
(jobsite.cli.errors), never a traceback. ``--traceback`` keeps Django's.

It also keeps a command from creating an empty SQLite database as a side
effect: before ``migrate`` (or ``make run``) has made the file, a command that
only reads or writes rows (``token``, ``jobs list``, ...) says to run
``./manage migrate`` instead of leaving an empty file behind that the next
command takes for a database.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from jobsite.cli import errors

# Commands that may create the SQLite database file: they build or open it on
# purpose, or (runserver) warn about unapplied migrations themselves.
CREATES_DATABASE = frozenset({
    "migrate", "runstack", "runserver", "test", "testserver", "createcachetable", "dbshell", "shell",
    "makemigrations", "squashmigrations", "optimizemigration", "sqlmigrate",
})


# Django's options that every command takes, as ./manage may be given them before the command's name.
VALUE_OPTIONS = frozenset({"-v", "--verbosity", "--settings", "--pythonpath"})
FLAG_OPTIONS = frozenset({"--traceback", "--no-color", "--force-color", "--skip-checks"})


def hoist_leading_options(argv: list[str]) -> list[str]:
    """``./manage -v 2 --no-color jobs list`` as ``./manage jobs -v 2 --no-color list``:
    Django reads the command's name from the first word only."""
    leading: list[str] = []
    position = 1
    while position < len(argv) and argv[position].startswith("-"):
        option = argv[position].split("=", 1)[0]
        if option in VALUE_OPTIONS and "=" not in argv[position] and position + 1 < len(argv):
            leading += argv[position:position + 2]
            position += 2
        elif option in VALUE_OPTIONS or option in FLAG_OPTIONS:
            leading.append(argv[position])
            position += 1
        else:  # --help, --version, or not an option of every command: Django's own handling
            return argv
    if not leading or position >= len(argv):
        return argv
    return [argv[0], argv[position], *leading, *argv[position + 1:]]


def _command_name(argv: list[str]) -> str | None:
    return argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None


def _apply_default_options(argv: list[str]) -> None:
    """--settings / --pythonpath, wherever they are, before settings are read
    (what Django's ManagementUtility does first, too)."""
    from django.core.management.base import CommandParser, handle_default_options

    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    try:
        options, _ = parser.parse_known_args(argv[2:])
        handle_default_options(options)
    except BaseException:  # a malformed line: Django's own parser reports it
        pass


def _never_create_sqlite_file() -> None:
    """Open an existing SQLite file read-write, never create one (mode=rw):
    a command run before ``migrate`` then fails with a line that says so."""
    from django.conf import settings

    db = settings.DATABASES.get("default", {})
    name = str(db.get("NAME") or "")
    if not db.get("ENGINE", "").endswith("sqlite3") or not name or name == ":memory:" or name.startswith("file:"):
        return
    if Path(name).exists():
        return
    errors.missing_sqlite_file = name
    db["NAME"] = f"file:{quote(str(Path(name).resolve()))}?mode=rw"


def main(argv: list[str] | None = None) -> None:
    argv = hoist_leading_options(list(sys.argv if argv is None else argv))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    try:
        _apply_default_options(argv)
        if _command_name(argv) not in CREATES_DATABASE and _command_name(argv) is not None:
            _never_create_sqlite_file()
        from django.core.management import execute_from_command_line

        execute_from_command_line(argv)
    except SystemExit:
        raise
    except BaseException as exc:
        if "--traceback" in argv:
            raise
        failure = errors.known_failure(exc)
        if failure is None:
            raise
        line = failure.message if failure.code != errors.EXIT_FAILED else f"error: {failure.message}"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (BrokenPipeError, OSError):
            pass
        sys.exit(failure.code)
