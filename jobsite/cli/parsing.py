"""The argument parsing every project CLI shares (``jobs``, ``predictions``,
``vision``):

- **global options anywhere**: Django's options (``-v``, ``--no-color``,
  ``--settings``, ``--traceback``...) and ``--json`` are accepted after the
  subcommand too (``share_global_options``);
- **did you mean**: a mistyped subcommand or choice names the closest ones
  (difflib);
- **one-line usage errors** that name the ``--help`` to read (exit 2);
- **help that never breaks a word**: descriptions are filled at word
  boundaries to the terminal's width (at most 100 columns); examples and other
  indented lines are kept as written; every command and subcommand ends with
  its examples and exit codes (``epilog``).
"""
from __future__ import annotations

import argparse
import copy
import difflib
import shutil
import textwrap
from typing import Iterable

from django.core.management.base import CommandError, CommandParser, DjangoHelpFormatter

HELP_MAX_WIDTH = 100

EXIT_CODES = {
    0: "done",
    1: "refused or failed: one line on stderr says why and what to do",
    2: "bad arguments: one line on stderr names the --help to read",
    130: "interrupted (Ctrl-C)",
    141: "output closed early (e.g. `| head`)",
}

# Django's options on every command; the ones a subcommand's line may carry too.
GLOBAL_OPTIONS = frozenset({"--version", "--verbosity", "--settings", "--pythonpath", "--traceback", "--no-color",
                            "--force-color", "--skip-checks"})
GLOBAL_NOTE = ("Global options (-v/--verbosity, --no-color, --force-color, --settings, --pythonpath, --traceback, "
               "--skip-checks{json}) go anywhere on the line, before or after the subcommand.")


def epilog(examples: Iterable[str] = (), exit_codes: dict[int, str] | None = None, note: str = "") -> str:
    """The end of a help page: examples (as written), a note, exit codes."""
    parts = []
    examples = list(examples)
    if examples:
        parts.append("examples:\n" + "\n".join(f"  {line}" if line else "" for line in examples))
    if note:
        parts.append(note.strip("\n"))
    codes = {**EXIT_CODES, **(exit_codes or {})}
    parts.append("exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in sorted(codes.items())
                                            if meaning))
    return "\n\n".join(parts)


class HelpFormatter(DjangoHelpFormatter):
    """Django's option order; words never broken; indented lines kept as written."""

    def __init__(self, prog, indent_increment=2, max_help_position=26, width=None):
        width = width or min(shutil.get_terminal_size((HELP_MAX_WIDTH, 24)).columns - 2, HELP_MAX_WIDTH)
        super().__init__(prog, indent_increment, max_help_position, max(width, 40))

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False) or [""]

    def _fill_text(self, text, width, indent):
        """Paragraphs (runs of unindented lines) filled at word boundaries;
        indented lines, such as examples, kept exactly."""
        out: list[str] = []
        paragraph: list[str] = []

        def flush():
            if paragraph:
                out.extend(textwrap.wrap(" ".join(" ".join(paragraph).split()), width, initial_indent=indent,
                                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False))
                paragraph.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                out.append("")
            elif line[:1].isspace() or line.rstrip().endswith(":"):
                flush()
                out.append(indent + line.rstrip())
            else:
                paragraph.append(line)
        flush()
        return "\n".join(out)


class CLIParser(CommandParser):
    """Django's CommandParser, with did-you-mean and one-line errors."""

    def _check_value(self, action, value):
        if action.choices is None or value in action.choices:
            return
        choices = [str(choice) for choice in action.choices]
        close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(None, f"unknown subcommand {value!r}{hint} (one of: {', '.join(choices)})")
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from {', '.join(choices)})")

    def error(self, message):
        subcommands = subparsers_of(self)
        if subcommands and message.startswith("the following arguments are required:"):
            message = f"a subcommand is required, one of: {', '.join(subcommands)}"
        line = f"{message} (see `{self.prog} --help`)"
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {line}\n")
        raise CommandError(f"Error: {line}", returncode=2)


def make_cli_parser(parser: CommandParser, *, prog: str) -> None:
    """Turn the parser Django built for a command into a CLIParser (before
    any subparser is added: they inherit its class), named as users type it."""
    # Django's BaseCommand.create_parser builds a CommandParser and offers no
    # hook for the class; CLIParser adds methods only, so the swap is safe.
    parser.__class__ = CLIParser
    parser.prog = prog
    parser.formatter_class = HelpFormatter


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


LONG_CHOICES = 24  # an option whose {a,b,c} is longer shows a metavar, and its choices in its help


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """After every argument is added: global options shared with the
    subcommands, long lists of choices moved from the usage into the help."""
    share_global_options(parser)
    _list_long_choices(parser)


def _list_long_choices(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _list_long_choices(sub)
        elif action.choices and action.option_strings and action.metavar is None and action.help != argparse.SUPPRESS:
            choices = [str(c) for c in action.choices]
            if len(",".join(choices)) + 2 > LONG_CHOICES:
                action.metavar = action.dest.upper()
                action.help = f"{action.help or ''} One of: {', '.join(choices)}.".strip()


def share_global_options(parser: argparse.ArgumentParser) -> None:
    """Accept the command's global options after its subcommand too.

    Each subparser gets a copy of them whose default is SUPPRESS: argparse
    copies a subparser's values over the command's, so an option given after
    the subcommand wins and one not given there leaves the command's value
    alone. The copies are left out of the subcommand's help (GLOBAL_NOTE says
    they work anywhere). An option string a subcommand already uses for
    itself stays the subcommand's (the long form still works). ``--json``
    is the subcommands' own (jobsite.cli.command adds it where it applies)."""
    shared = [a for a in parser._actions if GLOBAL_OPTIONS & set(a.option_strings)]
    for sub in subparsers_of(parser).values():
        for action in shared:
            strings = [s for s in action.option_strings if s not in sub._option_string_actions]
            if not strings:
                continue
            twin = copy.copy(action)
            twin.option_strings = strings
            twin.default = argparse.SUPPRESS
            twin.help = argparse.SUPPRESS
            twin.required = False
            sub._add_action(twin)
        share_global_options(sub)
