"""``./manage jobs <subcommand>``: manage scheduled jobs from the shell (seed 003).

A thin dispatcher: the arguments are built by scheduling.cli.parser, each
subcommand is a function in scheduling.cli.handlers, and its output is shaped
by scheduling.cli.rendering. Jobs are addressed by id or by name.

Whatever goes wrong ends in one line on stderr and a non-zero exit, never a
traceback: a refused or failed action (ValidationError, ApplicationError,
NotFound: exit 1), an unmigrated or unreachable database and an unreachable
broker (exit 1, saying what to do), a bad argument (argparse: exit 2),
Ctrl-C (exit 130) and output closed early, as in ``jobs show 10 | head -3``
(exit 141, like a shell pipeline killed by SIGPIPE).
"""
from __future__ import annotations

import logging
import os
import sys

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from kombu.exceptions import OperationalError as BrokerError
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import ConnectionError as RedisConnectionError

from jobsite.exceptions import ApplicationError, error_message
from scheduling.cli import handlers, parser
from scheduling.cli.rendering import Console

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _pending_migrations() -> bool:
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except Exception:
        return False


def database_problem(exc: DatabaseError) -> str:
    """One line: what is wrong with the database and what to do."""
    detail = " ".join(str(exc).split())[:200]
    if _pending_migrations():
        return (f"The database is not migrated ({detail}); run `./manage migrate` "
                f"(DATABASE_URL: {_database_label()}).")
    return f"Database error ({detail}; DATABASE_URL: {_database_label()})."


def _database_label() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null, so that the interpreter's
    last flush at exit does not fail again (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class Command(BaseCommand):
    help = parser.HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        command_parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.configure(command_parser)
        parser.one_line_errors(command_parser)
        if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (scheduling/cli/completion.py)
            import argcomplete

            argcomplete.autocomplete(command_parser)
        return command_parser

    def add_arguments(self, command_parser):
        parser.add_subcommands(command_parser)

    def execute(self, *args, **options):
        # The command reports every outcome itself, in one line: the log records
        # services and Celery write meanwhile (a broker retrying, a traceback
        # logged before the error is raised) would bury it. -v 2 shows them.
        previous_disable = logging.root.manager.disable
        if options.get("verbosity", 1) < 2:
            logging.disable(logging.CRITICAL)
        # Ctrl-C and a closed pipe can come at any point, output included.
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError("Interrupted.", returncode=EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise CommandError("Output closed early (broken pipe); stopped.", returncode=EXIT_BROKEN_PIPE) from None
        finally:
            logging.disable(previous_disable)

    def handle(self, *args, subcommand: str, **options):
        console = Console(self.stdout, self.style, no_color=options.get("no_color", False),
                          force_color=options.get("force_color", False))
        try:
            handlers.HANDLERS[subcommand](console, **options)
            console.flush()
        except BrokenPipeError:  # a ConnectionError too, but not the broker's: see execute()
            raise
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(error_message(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(database_problem(exc)) from None
        except (BrokerError, ConnectionError, RedisConnectionError) as exc:
            # kombu's OperationalError, or redis-py's / the socket's ConnectionError
            broker = maybe_sanitize_url(settings.CELERY_BROKER_URL)
            raise CommandError(f"Cannot reach the task broker at {broker}: {' '.join(str(exc).split())[:200]}. "
                               "Is Redis running (`make run` starts one), and REDIS_URL right?") from None
