"""Services: the only code that writes Jobs and Executions and talks to Celery/beat.

Every service is keyword-only and atomic; the Job row and its beat
PeriodicTask change in the same transaction, and Celery messages are sent on
commit so a worker never sees a row that is not there yet.

One concern per module, each importing only those above it:

* ``sending``: a queued Execution row and its ``run_execution`` message (sent by task name);
* ``lifecycle``: claim, run, finish, cancel, time out, mark lost, retry;
* ``requests``: run a job now, unless its state or overlap policy refuses;
* ``dispatch``: what beat's fires become, and the catch-up of missed ones;
* ``jobs``: create, validate, update, delete, pause, resume, credentials;
* ``sweeps``: the safety nets for lost runs and lost messages.
* ``backfill``: runs of a job for the due times of a past range, one at a time;
* ``calendars``: the calendars whose days and hours jobs skip;
* ``apply`` (with ``apply_jobs``, ``apply_calendars``): jobs as code, plan and apply a file, export one.

The service API is handed on here, so callers write ``services.job_create(...)``.
"""
from scheduling.services.apply import ManifestError, Plan, manifest_apply, manifest_export  # noqa: F401
from scheduling.services.backfill import (  # noqa: F401  (also connects the backfill's next-run receiver)
    backfill_cancel, backfill_due_times, backfill_preview, backfill_progress, job_backfill,
)
from scheduling.services.calendars import (  # noqa: F401
    calendar_create, calendar_delete, calendar_update, job_set_calendars,
)
from scheduling.services.dispatch import (  # noqa: F401
    ScheduledFire, job_dispatch_scheduled, jobs_dispatch_scheduled, jobs_record_fired,
)
from scheduling.services.jobs import (  # noqa: F401
    job_create, job_delete, job_ensure_manual, job_pause, job_resume, job_secrets, job_set_enabled, job_set_secrets,
    job_update, job_validate, jobs_create_bulk, jobs_update_bulk,
)
from scheduling.services.lifecycle import (  # noqa: F401
    execution_cancel, execution_claim, execution_finish, execution_hard_timeout, execution_is_queued,
    execution_is_running, execution_mark_lost, execution_process_lost, execution_record_progress, execution_run,
    run_params,
)
from scheduling.services.requests import job_execute, job_execute_for  # noqa: F401
from scheduling.services.sending import executions_send, revoke_task  # noqa: F401
from scheduling.services.sweeps import executions_reap_lost, executions_resend_stale_queued  # noqa: F401
