"""The ``workflow`` job kind: run a stored Workflow with the job's input.

Found by the core's ``autodiscover_modules("executors")``. A job of this kind
carries ``config = {"workflow_id", "job_id", "user_id"}`` (the seed-002
identity of the schedule) and ``task_kwargs = {"input": ...}``; a run may add
``resume_from`` / ``previous_outputs`` (a re-run from a failed step).
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers

from scheduling.executors import Executor, RunResult, register
from scheduling.workflows.errors import NOT_YOUR_WORKFLOW
from scheduling.workflows.models import Workflow
from scheduling.workflows.selectors import workflow_usable_by

RUN_PARAMS = ("input", "resume_from", "previous_outputs", "resumed_from_execution")


class WorkflowJobConfig(serializers.Serializer):
    workflow_id = serializers.SlugField(max_length=100)
    job_id = serializers.CharField(max_length=150)
    user_id = serializers.CharField(max_length=255)


@register
class WorkflowExecutor(Executor):
    kind = "workflow"
    label = "Workflow"
    config_serializer = WorkflowJobConfig

    def check(self, job, *, errors) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        workflow_id = (job.config or {}).get("workflow_id") if isinstance(job.config, dict) else None
        workflow = Workflow.objects.filter(pk=workflow_id).first() if "config" not in errors else None
        if "config" not in errors and workflow is None:
            problems["config"] = [f"Workflow '{workflow_id}' does not exist."]
        elif workflow is not None and job.owner_id is not None and not workflow_usable_by(workflow, job.owner):
            problems["config"] = [f"{NOT_YOUR_WORKFLOW} The job's owner may not use workflow '{workflow_id}' "
                                  f"(neither theirs nor shared with them)."]
        if isinstance(job.task_kwargs, dict):
            unknown = sorted(set(job.task_kwargs) - {"input"})
            if unknown:
                problems["task_kwargs"] = [f"A workflow job takes only 'input'; unknown: {', '.join(unknown)}."]
            elif not isinstance(job.task_kwargs.get("input", ""), str):
                problems["task_kwargs"] = ["'input' must be a string."]
        return problems

    def validate_params(self, job, params: dict[str, Any]) -> None:
        problems = []
        unknown = sorted(set(params) - set(RUN_PARAMS))
        if unknown:
            problems.append(f"Unknown parameter(s) for a workflow run: {', '.join(unknown)}. It accepts: "
                            f"{', '.join(RUN_PARAMS)}.")
        if not isinstance(params.get("input", ""), str):
            problems.append("input must be a string.")
        resume_from = params.get("resume_from", 0)
        workflow = Workflow.objects.filter(pk=(job.config or {}).get("workflow_id")).first()
        count = len(workflow.steps) if workflow is not None else 0
        if not isinstance(resume_from, int) or isinstance(resume_from, bool) or not 0 <= resume_from < max(count, 1):
            problems.append(f"resume_from must be a step index from 0 to {max(count - 1, 0)}.")
        previous = params.get("previous_outputs", {})
        if not isinstance(previous, dict):
            problems.append("previous_outputs must be an object of step name → output.")
        if problems:
            raise ValidationError({"override_kwargs": problems})

    def run(self, job, execution, params: dict[str, Any]) -> RunResult:
        from scheduling.workflows.runner import workflow_run

        workflow_id = job.config.get("workflow_id")
        workflow = Workflow.objects.select_related("owner").filter(pk=workflow_id).first()
        if workflow is None:
            return RunResult(ok=False, output=f"Workflow '{workflow_id}' no longer exists.")
        if not workflow.enabled:
            return RunResult(ok=False, output=f"Workflow '{workflow_id}' is disabled.")
        # Whoever the run is for must (still) be allowed to use the workflow:
        # the job's owner, and the person who asked for this run.
        users = [("The job's owner", job.owner)] if job.owner_id is not None else []
        if execution.triggered_by_id is not None and execution.triggered_by_id != job.owner_id:
            users.append(("The user who asked for this run", execution.triggered_by))
        for who, user in users:
            if not workflow_usable_by(workflow, user):
                return RunResult(ok=False, output=f"{NOT_YOUR_WORKFLOW} {who} may not use workflow "
                                                  f"'{workflow_id}' (neither theirs nor shared with them).")
        return workflow_run(job=job, execution=execution, workflow=workflow, params=params)
