"""``./manage jobs <subcommand>``: manage scheduled jobs from the shell (seed 003).

A thin declaration: the arguments are built by scheduling.cli.parser, each
subcommand is a function in scheduling.cli.handlers, and its output is shaped
by scheduling.cli.rendering. What every project CLI shares (global options
anywhere, did-you-mean, help, one-line errors and exit codes, terminal
tables or tab-separated output) is jobsite.cli's CLICommand.
"""
from __future__ import annotations

import os

from jobsite.cli.command import CLICommand
from scheduling.cli import handlers, parser


class Command(CLICommand):
    name = "jobs"
    help = parser.HELP
    examples = parser.COMMAND_EXAMPLES
    json_subcommands = frozenset(parser.READ_COMMANDS)
    json_help = "Print machine-readable JSON (the API's shapes) instead of tables."

    def create_parser(self, prog_name, subcommand, **kwargs):
        command_parser = super().create_parser(prog_name, subcommand, **kwargs)
        if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (scheduling/cli/completion.py)
            import argcomplete

            argcomplete.autocomplete(command_parser)
        return command_parser

    def add_subcommands(self, add):
        parser.add_subcommands(add)

    def handler(self, subcommand):
        return handlers.HANDLERS[subcommand]
