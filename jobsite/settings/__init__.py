"""jobsite settings, read from the environment (12-factor).

Every variable read here is documented in README.md ("Configuration") and
listed in .env.example. Embedded defaults (SQLite under var/, a
project-started Redis) make `make run` and `make test` work on a fresh
machine; production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=false,
and a missing or placeholder production secret stops the process with
``ImproperlyConfigured``.

One module per integration, each setting defined once, in the order a reader
needs them: Django itself (base), the database, Celery and the scheduling
core, beat, the API and its auth, secrets at rest, outbound HTTP,
notifications, operations pages, then each facade app, and last the optional
tracing and error reporting (which read the others).
"""
from jobsite.settings.base import *  # noqa: F401,F403
from jobsite.settings.database import *  # noqa: F401,F403
from jobsite.settings.celery import *  # noqa: F401,F403
from jobsite.settings.jobs import *  # noqa: F401,F403
from jobsite.settings.beat import *  # noqa: F401,F403
from jobsite.settings.api import *  # noqa: F401,F403
from jobsite.settings.auth import *  # noqa: F401,F403
from jobsite.settings.crypto import *  # noqa: F401,F403
from jobsite.settings.outbound import *  # noqa: F401,F403
from jobsite.settings.notifications import *  # noqa: F401,F403
from jobsite.settings.operations import *  # noqa: F401,F403
from jobsite.settings.workflows import *  # noqa: F401,F403
from jobsite.settings.vision import *  # noqa: F401,F403
from jobsite.settings.predictions import *  # noqa: F401,F403
from jobsite.settings.observability import *  # noqa: F401,F403
