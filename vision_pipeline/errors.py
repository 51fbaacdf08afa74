"""Stable error codes of the vision pipeline (the ``code`` of an error body)."""
from enum import StrEnum


class ErrorCode(StrEnum):
    CRON_JOB_NOT_FOUND = "vision_cron_job_not_found"
    BATCH_NOT_FOUND = "vision_batch_not_found"
    BATCH_NOT_ACTIVE = "vision_batch_not_active"
    REPORT_NOT_READY = "vision_report_not_ready"
    NO_IMAGES = "vision_no_images"
    TOO_MANY_IMAGES = "vision_too_many_images"
    IMAGE_REFUSED = "vision_image_refused"
    UNKNOWN_MODEL = "vision_unknown_model"
    MODEL_NOT_CONFIGURED = "vision_model_not_configured"
    DESCRIPTIONS_INVALID = "vision_descriptions_invalid"
    TEXT_INVALID = "vision_text_invalid"
