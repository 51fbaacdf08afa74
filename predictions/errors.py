"""Stable error codes of the predictions app (the ``code`` of an error body)."""
from enum import StrEnum


class ErrorCode(StrEnum):
    JOB_NOT_FOUND = "prediction_job_not_found"
    FILE_MISSING = "prediction_file_missing"
    FILE_TOO_LARGE = "prediction_file_too_large"
    FILE_TYPE = "prediction_file_type"
    FILE_EMPTY = "prediction_file_empty"
    FILE_ENCODING = "prediction_file_encoding"
    FILE_UNREADABLE = "prediction_file_unreadable"
    FILE_UNSAFE = "prediction_file_unsafe"
    HEADER_INVALID = "prediction_header_invalid"
    LINE_TOO_LONG = "prediction_line_too_long"
    TEXT_INVALID = "prediction_text_invalid"
    JOB_TYPE = "prediction_job_type"
    CANNOT_CANCEL = "prediction_cannot_cancel"
    CANNOT_DELETE = "prediction_cannot_delete"
    NOT_COMPLETED = "prediction_not_completed"
    NOTHING_TO_RETRY = "prediction_nothing_to_retry"
