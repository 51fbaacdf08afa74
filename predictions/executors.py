"""The ``bulk_prediction`` job kind: one run scores one uploaded file.

Found by the core's autodiscovery (docs/architecture.md, "Executor
plug-ins"). Each upload is an Execution of the ``predictions.bulk-upload``
manual job with ``override_kwargs={"upload_id": ...}``.
"""
import uuid

from django.core.exceptions import ValidationError

from scheduling.executors import Executor, register


@register
class BulkPredictionExecutor(Executor):
    kind = "bulk_prediction"
    keeps_celery_result = True  # celery_info shows the task's state and progress meta
    internal = True  # its one job is the uploads' manual job (scheduling.kinds: internal kinds)
    label = "Bulk default-risk predictions (uploaded files)"

    def validate_params(self, job, params):
        try:
            uuid.UUID(str(params.get("upload_id")))
        except ValueError:
            raise ValidationError({"override_kwargs": ["upload_id must be the id (UUID) of a bulk upload."]}) from None

    def run(self, job, execution, params):
        # Imported here: pyarrow and numpy load in the worker, not in every web process.
        from predictions.services import upload_process

        return upload_process(execution=execution, upload_id=params["upload_id"])
