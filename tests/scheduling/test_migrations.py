"""Models never drift from migrations (django-celery-beat's
test_models_match_migrations): a model change without its migration fails here."""
import re
from io import StringIO

import pytest
from django.core.management import call_command

# makemigrations reads the applied-migrations table to check history consistency.
pytestmark = pytest.mark.django_db


def test_models_match_migrations():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", "--verbosity", "1", stdout=out, stderr=StringIO())
        drifted = False
    except SystemExit:  # --check exits 1 when a migration is missing
        drifted = True
    if drifted:
        report = out.getvalue()
        apps = sorted(set(re.findall(r"^Migrations for '([^']+)':", report, re.M)))
        pytest.fail(
            f"Models of {', '.join(apps) or 'some apps'} differ from their migrations; "
            f"run `./manage makemigrations <app> -n <what_changed>` and commit the result.\n{report}",
            pytrace=False,
        )
