"""``./manage jobs <subcommand>``: manage scheduled jobs from the shell (seed 003).

A thin dispatcher: the arguments are built by scheduling.cli.parser, each
subcommand is a function in scheduling.cli.handlers, and its output is shaped
by scheduling.cli.rendering. Jobs are addressed by id or by name. Errors
(ValidationError, ApplicationError, NotFound) become one-line CommandErrors,
so the shell sees a readable message and a non-zero exit code.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from jobsite.exceptions import ApplicationError, error_message
from scheduling.cli import handlers, parser
from scheduling.cli.rendering import Console


class Command(BaseCommand):
    help = parser.HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        command_parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.configure(command_parser)
        return command_parser

    def add_arguments(self, command_parser):
        parser.add_subcommands(command_parser)

    def handle(self, *args, subcommand: str, **options):
        try:
            handlers.HANDLERS[subcommand](Console(self.stdout, self.style), **options)
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(error_message(exc)) from exc
