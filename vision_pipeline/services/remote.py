"""A remote batch backend: ``backend_api_url`` names another installation,
whose batch API (``/api/v1/vision/batches``) analyses the images."""
from __future__ import annotations

import json
import time

from jobsite import http
from vision_pipeline import external
from vision_pipeline.models import Batch
from vision_pipeline.services.config import ProcessorConfig
from vision_pipeline.services.deadlines import check_deadline

REMOTE_POLL_SECONDS = 2.0


def remote_batch(*, config: ProcessorConfig, analysis: external.Analysis, files, descriptions: dict[str, str],
                 deadline: float) -> tuple[str, bytes]:
    """Create the batch on the backend at ``backend_api_url`` over HTTP, wait for
    it, and return (batch_id, report bytes)."""
    base = config.backend_api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {config.backend_api_key}"} if config.backend_api_key else {}
    secrets = (config.external_api_key, config.backend_api_key)
    handles = [open(item.path, "rb") for item in files]
    try:
        response = http.request(
            "POST", f"{base}/api/v1/vision/batches", headers=headers, timeout=(10.0, 300.0),
            data={"user_query": analysis.user_query, "descriptions": json.dumps(descriptions),
                  "organization_id": analysis.organization_id, "model": config.analyzer},
            files=[("images", (item.name, handle, "application/octet-stream")) for item, handle in zip(files, handles)],
        )
        batch_id = response.json()["batch_id"]
        while True:
            check_deadline(deadline, config.analysis_timeout_seconds)
            status = http.get_json(f"{base}/api/v1/vision/batches/{batch_id}", headers=headers)
            if status.get("status") == Batch.Status.COMPLETED:
                break
            if status.get("status") in (Batch.Status.FAILED, Batch.Status.CANCELLED):
                raise external.ExternalAPIError(f"Remote batch {batch_id} {status.get('status')}: "
                                                f"{status.get('error') or ''}".strip())
            time.sleep(REMOTE_POLL_SECONDS)
        report = http.request("GET", f"{base}/api/v1/vision/batches/{batch_id}/report", headers=headers,
                              timeout=(10.0, 120.0))
        return str(batch_id), report.content
    except http.HTTPStatusError as exc:
        raise external.ExternalAPIError(f"Backend API returned {exc.status_code}") from None
    except http.OutboundHTTPError as exc:
        raise external.ExternalAPIError(external.scrub(f"Backend API failed: {exc}", *secrets)) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise external.ExternalAPIError("Backend API answered something that is not a batch") from None
    finally:
        for handle in handles:
            handle.close()
