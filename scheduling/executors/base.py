"""What a job kind is: an ``Executor`` (validate a job, run it) and the
``RunResult`` one run returns.

A kind is an ``Executor`` subclass registered with ``@register`` in the
kinds registry (``scheduling.kinds``), which the Job model, the CLI and the
services read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from rest_framework.serializers import Serializer

    from scheduling.models import Execution, Job


@dataclass
class RunResult:
    """What one run produced: a one-line ``output`` summary, a structured
    ``result`` (JSON-safe), and ``ok`` False for a handled failure.

    ``status`` names the outcome when ``ok`` alone cannot: an executor that
    enforces its own deadlines (one analysis of a batch, say) reports
    ``Outcome.TIMEOUT``. Default: ``SUCCESS`` if ok, else ``FAILED``.

    ``did_nothing`` says a successful run found no work (a poll that found
    nothing new): it is stored on the Execution, still a success, and the
    admin's run list hides such runs unless asked. Only a success can be one."""

    class Outcome(StrEnum):
        """How a run ended, as its executor says; stored as the Execution's status."""

        SUCCESS = "success"
        FAILED = "failed"
        TIMEOUT = "timeout"
        ERROR = "error"

    output: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    batch_id: str | None = None
    status: Outcome | None = None
    did_nothing: bool = False

    def __post_init__(self):
        if self.did_nothing and not self.ok:
            raise ValueError("RunResult(ok=False) cannot have did_nothing: a failure is never a run without work.")
        if self.status is None:
            return
        try:
            self.status = self.Outcome(self.status)
        except ValueError:
            raise ValueError(
                f"RunResult.status must be one of {', '.join(self.Outcome)}, not {self.status!r}."
            ) from None
        if (self.status == self.Outcome.SUCCESS) != self.ok:
            raise ValueError(f"RunResult(ok={self.ok}) cannot have status '{self.status}'.")

    @property
    def outcome(self) -> Outcome:
        return self.status or (self.Outcome.SUCCESS if self.ok else self.Outcome.FAILED)


class Executor:
    """One job kind.

    Subclasses set ``kind`` and ``label`` and implement ``run``. Raising in
    ``run`` means the run failed (the dispatcher records the error and retries
    per policy); returning ``RunResult(ok=False)`` is a handled failure.
    ``validate`` and ``validate_params`` raise ``ValidationError`` with a
    field → messages dict; the API answers those as 400 naming the field.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    #: Optional DRF serializer for ``Job.config``; ``validate`` runs it, so the
    #: API, the admin form and the CLI all get its errors under ``config``.
    config_serializer: ClassVar[type[Serializer] | None] = None
    #: Whether a run's Celery task keeps its state and result in the result
    #: backend (for a facade that shows them, e.g. seed 004's ``celery_info``).
    #: Off by default: the outcome lives on the Execution, and not storing it
    #: twice saves a result write (and a result subscription) per run.
    keeps_celery_result: ClassVar[bool] = False

    def validate(self, job: Job) -> None:
        """Check the kind's settings of ``job`` when it is created or updated:
        a known queue, ``config_serializer`` on the config, then ``check``."""
        errors: dict[str, list[str]] = {}
        if job.queue not in settings.JOBS_QUEUES:
            errors["queue"] = [f"Unknown queue '{job.queue}'. Use one of: {', '.join(settings.JOBS_QUEUES)}."]
        if self.config_serializer is not None and isinstance(job.config, dict):
            from jobsite.exceptions import flatten_errors

            serializer = self.config_serializer(data=job.config)
            if not serializer.is_valid():
                errors["config"] = [flatten_errors(serializer.errors)]
        for field_name, messages in self.check(job, errors=errors).items():
            errors.setdefault(field_name, []).extend(messages)
        if errors:
            raise ValidationError(errors)

    def check(self, job: Job, *, errors: dict[str, list[str]]) -> dict[str, list[str]]:
        """The kind's own rules, as field → messages (``errors``: what the
        checks above already found, so a rule can skip a field at fault)."""
        return {}

    def validate_params(self, job: Job, params: dict[str, Any]) -> None:
        """Check the parameters of one run (the job's kwargs with a request's
        ``override_kwargs`` merged over them) before it is accepted."""

    def run(self, job: Job, execution: Execution, params: dict[str, Any]) -> RunResult:
        raise NotImplementedError
