"""``manage.py token USERNAME [--ttl SECONDS]``: print an access token.

Only the token goes to stdout, so ``TOKEN=$(./manage token alice)`` works; a
failure is one line on stderr (``error: ...``) and exit code 1.
"""
from argparse import ArgumentTypeError
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobsite.auth import access_token_for
from jobsite.cli.command import OneLineErrors


def _positive_seconds(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return number


class Command(OneLineErrors, BaseCommand):
    help = "Print a bearer access token (JWT) for USERNAME."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--ttl",
            type=_positive_seconds,
            default=None,
            metavar="SECONDS",
            help="Token lifetime in seconds (default: JWT_ACCESS_TTL_SECONDS).",
        )

    def handle(self, *args, username, ttl, **options):
        User = get_user_model()
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"No user named '{username}'.") from None
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive; its tokens would be rejected.")
        token = access_token_for(user, ttl=timedelta(seconds=ttl) if ttl else None)
        self.stdout.write(token)
