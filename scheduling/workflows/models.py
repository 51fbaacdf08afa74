"""A Workflow is data: an ordered list of step definitions, validated on
every write by ``steps.validate_steps`` and run by ``runner.workflow_run``.

Its schedules are not stored here: they are ``scheduling.Job`` rows of kind
``workflow`` (see ``services.workflow_schedule_save``), so beat sync,
executions, cancel, retries and statistics all come from the core.
"""
from django.conf import settings
from django.db import models


class Workflow(models.Model):
    # Seed 002 addresses a workflow by a slug ("video-automation-workflow"),
    # unique in the installation: someone else's slug is a 403, not a second
    # workflow of the same name.
    id = models.SlugField(
        primary_key=True, max_length=100,
        help_text="The workflow_id clients send (letters, digits, - and _); fixed once created.",
    )
    name = models.CharField(max_length=200, help_text="Human-readable name.")
    description = models.TextField(blank=True, help_text="What the workflow does.")
    steps = models.JSONField(
        default=list,
        help_text="Ordered step definitions (a JSON list); see the docs, 'Workflows'.",
    )
    secrets = models.TextField(
        blank=True, default="",
        help_text="Credentials for ${secrets.NAME} templates, Fernet-encrypted (jobsite.crypto); never shown.",
    )
    enabled = models.BooleanField(default=True, help_text="A disabled workflow cannot be scheduled and its runs fail.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflows",
        help_text="Who the workflow belongs to: the one user who may schedule and run it, unless it is shared.",
    )
    organization = models.ForeignKey(
        "jobsite.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="workflows",
        help_text="Members of this organization may see the workflow; they may use it only when it is shared.",
    )
    # Seeing a workflow is the tenancy rule; using it (schedule, trigger, run,
    # re-run) runs it with its owner's encrypted secrets, so it needs the
    # owner's explicit consent ("You can only run your own workflows").
    shared_with_organization = models.BooleanField(
        default=False,
        help_text="Members of the workflow's organization may schedule, trigger and re-run it (set by its owner).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["owner"], name="workflow_owner_idx")]

    def __str__(self) -> str:
        return self.id
