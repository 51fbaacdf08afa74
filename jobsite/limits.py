"""Size limits of stored values that services check before they save
(request bodies are capped before parsing: jobsite.middleware)."""
from __future__ import annotations

import json

from django.conf import settings


def json_params_errors(values: dict) -> dict[str, list[str]]:
    """The fields of ``values`` whose JSON is larger than
    ``JOBS_JSON_PARAM_MAX_BYTES`` (UTF-8 bytes), each with a message. Every
    run copies its job's parameters and every page of runs shows them, so
    they are capped where they are saved."""
    limit = settings.JOBS_JSON_PARAM_MAX_BYTES
    errors = {}
    for field, value in values.items():
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        if size > limit:
            errors[field] = [f"At most {limit} bytes of JSON (JOBS_JSON_PARAM_MAX_BYTES); this is {size} bytes."]
    return errors
