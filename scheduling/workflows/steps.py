"""The built-in step types (``http``, ``task`` and ``delay``), what a running
step may read (``StepContext``), and the validation of a whole workflow's
steps.

A step definition is a JSON object. Every step has the common fields
``name`` (unique in the workflow; default ``step<N>``), ``type``,
``timeout_seconds``, ``retries``, ``retry_delay_seconds`` and
``continue_on_failure``; the rest is the type's own (``config``).

The step-type base class and registry are the core's (scheduling.steps):
other apps add types through their ``workflow_steps`` modules without this
package importing them, and without importing this package (DESIGN §1:
facades never import each other). They are re-exported here for the
package's own modules.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework import serializers

from jobsite import http
from scheduling.executors import schedulable_task, schedulable_tasks
from scheduling.steps import (  # noqa: F401  (the registry, re-exported for the package's modules)
    StepField, StepType, load_app_step_types, register_step_type, step_type_for, step_types, unregister_step_type,
)
from scheduling.workflows import templating

logger = logging.getLogger(__name__)

STEP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
COMMON_FIELDS = ("name", "type", "timeout_seconds", "retries", "retry_delay_seconds", "continue_on_failure")
MAX_STEP_TIMEOUT_SECONDS = 24 * 3600
MAX_STEP_RETRIES = 10
MAX_RETRY_DELAY_SECONDS = 300
# The common fields as a form shows them (``type`` is the form's type picker).
COMMON_STEP_FIELDS = (
    StepField("name", "text", "Name", required=True, placeholder="fetch_items",
              help="Letters, digits, _ and -; unique. Later steps read its output as ${steps.<name>.output}."),
    StepField("timeout_seconds", "number", "Timeout (s)", help="Default: the step type's own."),
    StepField("retries", "integer", "Retries", default=0, help=f"0 to {MAX_STEP_RETRIES}."),
    StepField("retry_delay_seconds", "number", "Retry delay (s)", default=1,
              help=f"0 to {MAX_RETRY_DELAY_SECONDS} seconds."),
    StepField("continue_on_failure", "boolean", "Continue on failure", default=False,
              help="Run the next steps even if this one fails."),
)


@dataclass
class StepContext:
    """What a running step may read. ``variables`` are the template roots."""

    workflow_id: str
    job_id: str
    execution_id: int | None
    owner: Any
    input: str
    timeout_seconds: float
    variables: dict[str, Any] = field(default_factory=dict)

    def render(self, value: Any, *, quote_url: bool = False) -> Any:
        return templating.render(value, self.variables, quote_url=quote_url)


def _placeholder_free(text: str) -> str:
    """``text`` with each placeholder replaced by a neutral word, to check its shape."""
    return templating.PLACEHOLDER.sub(lambda m: "x" if m["path"] else "$", text)


# ---------------------------------------------------------------------------
# http
# ---------------------------------------------------------------------------
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class HttpStepConfig(serializers.Serializer):
    method = serializers.ChoiceField(choices=HTTP_METHODS, default="GET")
    url = serializers.CharField(max_length=2000)
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=4000), default=dict)
    body = serializers.JSONField(required=False, allow_null=True)


@register_step_type
class HttpStep(StepType):
    """One request through the project's outbound client (jobsite.http):
    timeouts, size cap, SSRF guard and redaction included."""

    type = "http"
    label = "HTTP request"
    description = "Send one HTTP request; the output is its status code and (JSON) body."
    templated_fields = ("url", "headers", "body")
    url_fields = ("url",)
    config_serializer = HttpStepConfig
    fields = (
        StepField("method", "choice", "Method", choices=HTTP_METHODS, default="GET"),
        StepField("url", "url", "URL", required=True, placeholder="https://api.example.com/items/${input}",
                  help="Where to send the request. May use ${input}, ${steps.<name>.output...}."),
        StepField("headers", "mapping", "Headers", placeholder="Authorization: Bearer ${secrets.API_TOKEN}",
                  help="One 'Name: value' a line. Credentials come from the workflow's secrets: ${secrets.NAME}."),
        StepField("body", "json", "JSON body", placeholder='{"text": "${input}"}',
                  help="Sent as JSON (not with GET or HEAD). Placeholders work inside strings."),
    )
    default_timeout_seconds = 30

    def check(self, config: dict, *, owner) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        url = config["url"].strip()
        if not re.match(r"^https?://", url, re.IGNORECASE):
            errors["url"] = ["Must start with http:// or https:// (a placeholder may not supply the scheme)."]
        else:
            try:
                http.check_url(_placeholder_free(url))
            except ValueError as exc:  # BlockedURL: not http(s), denied, private/loopback...
                errors["url"] = [str(exc)]
        for name, value in config["headers"].items():
            if http.redact_headers({name: "v"})[name] == "***":
                refs = list(templating.references(value))
                if not refs or any(not ref.startswith("secrets.") for ref in refs):
                    errors.setdefault("headers", []).append(
                        f"Header '{name}' carries a credential: store it in the workflow's secrets and write "
                        f"${{secrets.NAME}} (credentials are never stored in plain text)."
                    )
        if config["method"] in ("GET", "HEAD") and config.get("body") is not None:
            errors["body"] = [f"A {config['method']} request has no body."]
        return errors

    def run(self, config: dict, context: StepContext) -> Any:
        headers = {name: str(value) for name, value in (config.get("headers") or {}).items()}
        kwargs: dict[str, Any] = {"headers": headers}
        if config.get("body") is not None:
            kwargs["json"] = config["body"]
        # The step's own retries replace the client's: one attempt per try.
        response = http.request(
            config.get("method", "GET"), config["url"], timeout=context.timeout_seconds, retries=0,
            max_bytes=settings.WORKFLOWS_HTTP_MAX_BYTES, **kwargs,
        )
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.content.decode(response.encoding or "utf-8", errors="replace")
        return {"status_code": response.status_code, "body": body}


# ---------------------------------------------------------------------------
# task
# ---------------------------------------------------------------------------
class TaskStepConfig(serializers.Serializer):
    task_name = serializers.CharField(max_length=255)
    kwargs = serializers.DictField(child=serializers.JSONField(), default=dict)


def task_allowed(owner, task_name: str) -> bool:
    """Superusers' workflows may call any schedulable task; everyone else's
    only those in WORKFLOWS_TASK_NAMES (maintenance tasks are for operators)."""
    if owner is not None and getattr(owner, "is_superuser", False):
        return True
    return task_name in settings.WORKFLOWS_TASK_NAMES


@register_step_type
class TaskStep(StepType):
    """Call one allow-listed schedulable task (scheduling.executors) in the run's own worker process."""

    type = "task"
    label = "Schedulable task"
    description = "Call one of the platform's schedulable tasks with arguments."
    templated_fields = ("kwargs",)
    config_serializer = TaskStepConfig
    fields = (
        StepField("task_name", "text", "Task", required=True, suggestions=lambda: list(schedulable_tasks()),
                  help="A schedulable task workflows may call (WORKFLOWS_TASK_NAMES; operators' workflows: any)."),
        StepField("kwargs", "json", "Arguments", default={}, placeholder='{"seconds": 5}',
                  help="The task's keyword arguments, as a JSON object. Placeholders work inside strings."),
    )
    default_timeout_seconds = 300

    def check(self, config: dict, *, owner) -> dict[str, list[str]]:
        task = schedulable_task(config["task_name"])
        if task is None or not task_allowed(owner, config["task_name"]):
            names = [name for name in schedulable_tasks() if task_allowed(owner, name)]
            return {"task_name": [
                f"'{config['task_name']}' is not a task workflows may call. Allowed: {', '.join(names) or 'none'}."
            ]}
        problems = task.argument_errors([], config["kwargs"])
        messages = [m for field_messages in problems.values() for m in field_messages]
        return {"kwargs": messages} if messages else {}

    def run(self, config: dict, context: StepContext) -> Any:
        name = config["task_name"]
        task = schedulable_task(name)
        if task is None or not task_allowed(context.owner, name):
            raise PermissionError(f"Task '{name}' is not (or no longer) allowed for this workflow's owner.")
        kwargs = config.get("kwargs") or {}
        problems = task.argument_errors([], kwargs)
        if problems:
            raise ValueError("; ".join(m for messages in problems.values() for m in messages))
        from scheduling.models import Execution

        execution = Execution.objects.filter(pk=context.execution_id).first()
        outcome = task.func(execution=execution, **kwargs)
        summary = getattr(outcome, "output", None)
        if getattr(outcome, "ok", True) is False:
            raise RuntimeError(summary or f"Task '{name}' reported a failure.")
        result = getattr(outcome, "result", None) if summary is not None else outcome
        return {"output": summary if summary is not None else "", "result": result}


# ---------------------------------------------------------------------------
# delay
# ---------------------------------------------------------------------------
class DelayStepConfig(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=MAX_STEP_TIMEOUT_SECONDS)


@register_step_type
class DelayStep(StepType):
    """Wait ``seconds`` (the run stays cancellable: cancel terminates the process)."""

    type = "delay"
    label = "Delay"
    description = "Wait a number of seconds before the next step."
    config_serializer = DelayStepConfig
    fields = (
        StepField("seconds", "number", "Seconds", required=True, placeholder="30",
                  help=f"How long to wait (0 to {MAX_STEP_TIMEOUT_SECONDS} seconds)."),
    )

    def validate(self, config: dict, *, owner) -> dict[str, list[str]]:
        if isinstance(config.get("seconds"), bool):  # DRF's FloatField would read true as 1.0
            return {"seconds": ["A valid number is required."]}
        return super().validate(config, owner=owner)

    def timeout_for(self, config: dict) -> float:
        return float(config.get("seconds", 0)) + 10

    def run(self, config: dict, context: StepContext) -> Any:
        import time

        seconds = float(config["seconds"])
        time.sleep(seconds)
        return {"slept_seconds": seconds}


# ---------------------------------------------------------------------------
# Validating a whole workflow's steps
# ---------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_steps(steps: Any, *, owner, secret_names: set[str] | frozenset = frozenset()) -> list[dict]:
    """Check every step definition and return them normalised (names and
    common fields filled in). Raises ValidationError whose keys name the
    step and field (``steps[1].url``) and whose messages name the step."""
    if not isinstance(steps, list):
        raise ValidationError({"steps": ["Must be a JSON list of step objects."]})
    if not steps:
        raise ValidationError({"steps": ["A workflow needs at least one step."]})
    if len(steps) > settings.WORKFLOWS_MAX_STEPS:
        raise ValidationError({"steps": [f"At most {settings.WORKFLOWS_MAX_STEPS} steps."]})
    errors: dict[str, list[str]] = {}
    normalised: list[dict] = []
    seen: set[str] = set()
    known = ", ".join(step_types())

    for index, raw in enumerate(steps):
        label = f"Step {index + 1}"

        def add(field_name: str, message: str) -> None:
            key = f"steps[{index}].{field_name}" if field_name else f"steps[{index}]"
            errors.setdefault(key, []).append(f"{label}: {message}")

        if not isinstance(raw, dict):
            add("", "must be a JSON object with at least a 'type'.")
            continue
        step = dict(raw)
        name = step.get("name", f"step{index + 1}")
        if not isinstance(name, str) or not STEP_NAME_RE.match(name):
            add("name", "use 1-64 letters, digits, _ and - (starting with a letter or _).")
        elif name in seen:
            add("name", f"the name '{name}' is used by an earlier step; names must be unique.")
        else:
            label = f"Step {index + 1} ('{name}')"
        seen.add(name if isinstance(name, str) else "")
        step["name"] = name

        type_name = step.get("type")
        step_type = step_type_for(type_name) if isinstance(type_name, str) else None
        if type_name in (None, ""):
            add("type", f"this field is required. Use one of: {known}.")
        elif step_type is None:
            add("type", f"unknown step type '{type_name}'. Use one of: {known}.")

        timeout = step.get("timeout_seconds")
        if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= MAX_STEP_TIMEOUT_SECONDS):
            add("timeout_seconds", f"must be a number of seconds above 0 and at most {MAX_STEP_TIMEOUT_SECONDS}.")
        retries = step.setdefault("retries", 0)
        if not _is_int(retries) or not 0 <= retries <= MAX_STEP_RETRIES:
            add("retries", f"must be an integer from 0 to {MAX_STEP_RETRIES}.")
        delay = step.setdefault("retry_delay_seconds", 1)
        if not _is_number(delay) or not 0 <= delay <= MAX_RETRY_DELAY_SECONDS:
            add("retry_delay_seconds", f"must be a number of seconds from 0 to {MAX_RETRY_DELAY_SECONDS}.")
        if not isinstance(step.setdefault("continue_on_failure", False), bool):
            add("continue_on_failure", "must be true or false.")

        config = {key: value for key, value in step.items() if key not in COMMON_FIELDS}
        if step_type is not None:
            try:
                problems = step_type.validate(config, owner=owner) or {}
            except ValidationError as exc:
                problems = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            for field_name, messages in problems.items():
                for message in messages:
                    add(field_name, message)
            templated = getattr(step_type, "templated_fields", ())
            earlier = {s["name"] for s in normalised}
            for field_name in templated:
                value = config.get(field_name)
                for bad in templating.malformed(value):
                    add(field_name, f"'{bad}' is not a valid placeholder; write ${{input}}, ${{previous}}, "
                                    f"${{steps.<name>.output...}} or ${{secrets.<NAME>}} ($$ for a literal $).")
                for ref in templating.references(value):
                    problem = _reference_problem(ref, earlier, secret_names)
                    if problem:
                        add(field_name, problem)
            for field_name in set(config) - set(templated):
                if any(True for _ in templating.references(config[field_name])):
                    add(field_name, "placeholders are not expanded in this field.")
        normalised.append(step)
    if errors:
        raise ValidationError(errors)
    return normalised


def step_timeout(step: dict, step_type) -> float:
    """The step's own ``timeout_seconds``, else its type's default (not stored,
    so a later edit of, say, a delay's seconds moves its default along)."""
    if step.get("timeout_seconds") is not None:
        return float(step["timeout_seconds"])
    timeout_for = getattr(step_type, "timeout_for", None)
    config = {key: value for key, value in step.items() if key not in COMMON_FIELDS}
    return float(timeout_for(config)) if timeout_for else 60.0


def _reference_problem(ref: str, earlier: set[str], secret_names) -> str | None:
    parts = ref.split(".")
    root = parts[0]
    if root not in templating.ROOTS:
        return f"${{{ref}}} names nothing: use one of {', '.join(templating.ROOTS)}."
    if root == "steps":
        if len(parts) < 3 or parts[2] not in ("output", "status"):
            return f"${{{ref}}}: write ${{steps.<name>.output}} (or .output.<key>, or .status)."
        if parts[1] not in earlier:
            return f"${{{ref}}}: there is no earlier step named '{parts[1]}'."
    if root == "secrets":
        if len(parts) != 2:
            return f"${{{ref}}}: write ${{secrets.<NAME>}}."
        if parts[1] not in secret_names:
            return f"${{{ref}}}: the workflow has no secret named '{parts[1]}'."
    if root in ("input", "job_id", "execution_id", "workflow_id") and len(parts) > 1:
        return f"${{{ref}}}: {root} is a plain value; write ${{{root}}}."
    if root == "previous" and not earlier:
        return f"${{{ref}}}: the first step has no previous step."
    return None
