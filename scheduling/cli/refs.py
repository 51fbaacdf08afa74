"""How the ``jobs`` command finds what its arguments name."""
from __future__ import annotations

from jobsite.tenancy import SYSTEM
from scheduling import selectors
from scheduling.models import Job


def job_by_ref(ref: str) -> Job:
    """A job by id or unique name."""
    return selectors.job_get(user=SYSTEM, job_id=ref)
