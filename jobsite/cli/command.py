"""``CLICommand``: the base of the project's subcommand CLIs (``./manage jobs``,
``./manage predictions``, ``./manage vision``). A command declares its
description, examples and subcommands; the base gives all of them the same
behaviour:

- help with a description, examples and exit codes on the command and on
  every subcommand, never broken mid-word (jobsite.cli.parsing);
- global options anywhere on the line, ``--json`` where it applies;
- "did you mean" for a mistyped subcommand or choice;
- output through one Console (jobsite.cli.output): tables on a terminal,
  tab-separated lines elsewhere;
- failures as one line on stderr with a conventional exit code, never a
  traceback and never "CommandError:": a refusal (ValidationError,
  ApplicationError, CommandError) exits 1, a bad argument 2, Ctrl-C 130 (one
  line starting "interrupted"), output closed early 141; the database, the
  broker and the configuration say what to do (jobsite.cli.errors).

``OneLineErrors`` alone gives any other command the one-line errors.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Sequence

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, SystemCheckError, handle_default_options
from django.db import connections

from jobsite.cli.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, known_failure
from jobsite.cli.output import Console
from jobsite.cli.parsing import GLOBAL_NOTE, HelpFormatter, epilog, make_cli_parser, finish_parser
from jobsite.exceptions import ApplicationError, error_message

Handler = Callable[..., None]
SUBCOMMAND_NOTE = "Global options (-v 2, --no-color, --settings...) work here too; `./manage {name} --help` lists them."


class OneLineErrors:
    """For any BaseCommand: a CommandError is one plain line, ``error: <what
    to do>`` (``interrupted...`` for Ctrl-C, no prefix for output closed
    early), not Django's ``CommandError: ...``."""

    def run_from_argv(self, argv):  # Django's, but for how a CommandError is printed
        self._called_from_command_line = True
        parser = self.create_parser(argv[0], argv[1])
        options = parser.parse_args(argv[2:])
        cmd_options = vars(options)
        args = cmd_options.pop("args", ())
        handle_default_options(options)
        try:
            self.execute(*args, **cmd_options)
        except CommandError as exc:
            if options.traceback:
                raise
            if isinstance(exc, SystemCheckError):
                self.stderr.write(str(exc), lambda x: x)
            else:
                quiet = exc.returncode in (EXIT_INTERRUPTED, EXIT_BROKEN_PIPE)  # not errors: no "error:" prefix
                self.stderr.write(str(exc) if quiet else f"error: {exc}")
            sys.exit(exc.returncode)
        finally:
            try:
                connections.close_all()
            except Exception:  # the database being the problem was reported already
                pass


class CLICommand(OneLineErrors, BaseCommand):
    name = ""  # as typed after ./manage
    help = ""  # what the command is for: the first paragraph of its --help
    examples: Sequence[str] = ()
    exit_codes: dict[int, str] = {}
    json_subcommands: frozenset[str] = frozenset()
    json_help = "Print machine-readable JSON instead of a table."
    subcommand_dest = "subcommand"
    # The log records services write meanwhile (a broker retrying, a traceback
    # logged before the error is raised) would bury the one line: hidden
    # unless -v 2. A command whose log is its output says False.
    quiet_logs = True

    # -- what a command defines -------------------------------------------------------
    def add_subcommands(self, add: Callable[..., argparse.ArgumentParser]) -> None:
        """Call ``add(name, help, examples=[...], exit_codes={...}, description=...)``
        once per subcommand; it returns the subcommand's parser."""
        raise NotImplementedError

    def handler(self, subcommand: str) -> Handler:
        """The function that runs ``subcommand`` as ``handler(console, **options)``:
        by default the method ``do_<subcommand>`` (dashes as underscores)."""
        return getattr(self, "do_" + subcommand.replace("-", "_"))

    # -- parser ---------------------------------------------------------------------
    def add_arguments(self, parser):
        make_cli_parser(parser, prog=f"./manage {self.name}")
        json_list = ", ".join(sorted(self.json_subcommands))
        note = GLOBAL_NOTE.format(json=f", --json (with {json_list})" if json_list else "")
        parser.description = self.help
        parser.epilog = epilog(self.examples, self.exit_codes, note=note)
        if self.json_subcommands:
            parser.add_argument("--json", action="store_true", default=False,
                                help=f"{self.json_help} Applies to: {json_list}.")
        sub = parser.add_subparsers(dest=self.subcommand_dest, metavar="SUBCOMMAND", required=True,
                                    title="subcommands")
        parser._action_groups.insert(0, parser._action_groups.pop())  # the subcommands first in --help

        def add(name: str, help_text: str, *, examples: Sequence[str] = (), exit_codes: dict[int, str] | None = None,
                description: str = "", note: str = "") -> argparse.ArgumentParser:
            subparser = sub.add_parser(
                name, help=help_text, description=description or help_text, formatter_class=HelpFormatter,
                epilog=epilog(examples, {**self.exit_codes, **(exit_codes or {})},
                              note="\n\n".join(filter(None, [note, SUBCOMMAND_NOTE.format(name=self.name)]))),
            )
            if name in self.json_subcommands:
                subparser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=self.json_help)
            return subparser

        self.add_subcommands(add)
        finish_parser(parser)

    # -- running ----------------------------------------------------------------------
    def execute(self, *args, **options):
        previous_disable = logging.root.manager.disable
        if self.quiet_logs and options.get("verbosity", 1) < 2:
            logging.disable(logging.CRITICAL)
        try:
            return super().execute(*args, **options)
        except CommandError:
            raise
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(error_message(exc)) from exc
        except KeyboardInterrupt:
            raise Interrupted() from None
        except Exception as exc:
            failure = known_failure(exc)
            if failure is None or options.get("traceback"):
                raise
            raise CommandError(failure.message, returncode=failure.code) from None
        finally:
            logging.disable(previous_disable)

    def handle(self, *args, **options):
        subcommand = options[self.subcommand_dest]
        if options.get("json") and subcommand not in self.json_subcommands:
            raise CommandError(f"--json does not apply to `{self.name} {subcommand}` (it does to: "
                               f"{', '.join(sorted(self.json_subcommands))})", returncode=EXIT_USAGE)
        console = self.console(options)
        self.handler(subcommand)(console, **options)
        console.flush()

    def console(self, options: dict[str, Any]) -> Console:
        return Console(self.stdout, self.stderr, no_color=options.get("no_color", False),
                       force_color=options.get("force_color", False), style=self.style)
