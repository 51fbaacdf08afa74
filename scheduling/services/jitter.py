"""Start jitter: a job's scheduled runs start up to ``jitter_seconds`` after
their due time, each by an offset derived from (job, due time).

The offset is a hash, not a random draw: every beat (a standby that takes
over), every redelivered fire and every resend of the run's message gives the
same start time, so a replay never moves a run. ``scheduled_for`` stays the due
time (one run per fire, the catch-up and overdue checks read it); the run's
message is sent at once with an ``eta`` of due time + offset. The Execution is
``queued`` from the due time under its task id, so a cancel revokes it like any
queued run, and the stale-queued sweep looks at it only once its start time has
passed (``start_at``)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

#: The longest jitter: a message waiting for its eta is held by a worker,
#: unacknowledged, and must start well within the broker's visibility timeout.
MAX_JITTER_SECONDS = 3600


def start_offset_seconds(job_id: int, due: datetime, jitter_seconds: int) -> float:
    """The offset in [0, ``jitter_seconds``) of the run of ``job_id`` due at ``due``."""
    if not jitter_seconds:
        return 0.0
    key = f"{job_id}:{due.timestamp():.6f}".encode()
    fraction = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2 ** 64
    return fraction * jitter_seconds


def start_at(job_id: int, due: datetime, jitter_seconds: int) -> datetime:
    """When the run of ``job_id`` due at ``due`` starts (at the earliest)."""
    return due + timedelta(seconds=start_offset_seconds(job_id, due, jitter_seconds))


def start_window(due: datetime, jitter_seconds: int) -> dict:
    """The window a run due at ``due`` starts in, as the preview shows it."""
    return {"due": due, "starts_from": due, "starts_by": due + timedelta(seconds=jitter_seconds)}
