"""Stable error codes of the scheduling core (the ``code`` of an error body)."""
from enum import StrEnum


class ErrorCode(StrEnum):
    JOB_NAME_TAKEN = "job_name_taken"
    JOB_NOT_ACTIVE = "job_not_active"
    JOB_RUNNING = "job_running"
    EXECUTION_NOT_ACTIVE = "execution_not_active"
    BROKER_UNAVAILABLE = "broker_unavailable"
    ONCE_ALREADY_FIRED = "once_already_fired"
