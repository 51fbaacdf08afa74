"""Stable error codes of the workflows facade (the ``code`` of an error body)."""
from enum import StrEnum

# The workflow schedules contract's refusal of someone else's workflow.
NOT_YOUR_WORKFLOW = "Unauthorized: You can only run your own workflows."


class ErrorCode(StrEnum):
    INVALID_CRON_EXPRESSION = "invalid_cron_expression"
    NOT_YOUR_WORKFLOW = "not_your_workflow"
    WORKFLOW_ID_TAKEN = "workflow_id_taken"
    WORKFLOW_IN_USE = "workflow_in_use"
    ADMIN_ONLY = "admin_only"
    NOTHING_TO_RERUN = "nothing_to_rerun"
