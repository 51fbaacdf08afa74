"""CSV downloads (results, errors, templates), streamed row by row, with
spreadsheet formula injection neutralised: a text cell that starts with
= + - @ tab or CR (and is not a plain number) gets a leading apostrophe, so a
spreadsheet shows it as text instead of running it (OWASP "CSV Injection")."""
from __future__ import annotations

import csv
import io
import re
from typing import Iterable, Iterator

from jobsite.exceptions import ApplicationError
from predictions.errors import ErrorCode
from predictions.models import BulkUploadJob
from predictions.schema import column_names

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
ROWS_PER_CHUNK = 2000


def neutralise(value):
    """``=HYPERLINK(...)`` → ``'=HYPERLINK(...)``; numbers (``-12.5``) stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def _stream(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise(value) for value in row])
        count += 1
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def result_columns(upload: BulkUploadJob) -> list[str]:
    identity = ["row", "company_symbol", "company_name", "sector", "fiscal_year"]
    if upload.job_type == BulkUploadJob.JobType.QUARTERLY:
        identity.append("fiscal_quarter")
    return [*identity, "probability_of_default", "o_score", "risk_band", "z_score"]


def results_csv(upload: BulkUploadJob) -> Iterator[str]:
    from predictions.selectors import upload_predictions

    fields = ["row_number", "company_symbol", "company_name", "sector", "fiscal_year"]
    if upload.job_type == BulkUploadJob.JobType.QUARTERLY:
        fields.append("fiscal_quarter")
    fields += ["probability_of_default", "o_score", "risk_band", "z_score"]
    rows = upload_predictions(upload=upload).values_list(*fields).iterator(chunk_size=5000)
    return _stream(result_columns(upload), rows)


def errors_csv(upload: BulkUploadJob) -> Iterator[str]:
    """row, company_symbol, error, then the file's other columns as they were:
    fix the cells in a spreadsheet and upload it to retry-failed."""
    from predictions.selectors import upload_row_errors

    original = [name for name in (upload.header or column_names(upload.job_type))
                if name and name not in ("row", "error", "company_symbol")]
    header = ["row", "company_symbol", "error", *original]

    def rows():
        for error in upload_row_errors(upload=upload).iterator(chunk_size=2000):
            values = error.values or {}
            symbol = values.get("company_symbol", error.company_symbol)
            yield [error.row_number, symbol if symbol is not None else "", error.error,
                   *[values.get(name) if values.get(name) is not None else "" for name in original]]

    return _stream(header, rows())


def results_download(upload: BulkUploadJob) -> Iterator[str]:
    """The predictions CSV of a completed upload; a 400 before it has completed."""
    if upload.status != BulkUploadJob.Status.COMPLETED:
        raise ApplicationError(
            f"Job {upload.pk} is {upload.status}: results can be downloaded once it has completed.",
            status=400, code=ErrorCode.NOT_COMPLETED,
        )
    return results_csv(upload)


def errors_download(upload: BulkUploadJob) -> Iterator[str]:
    """The row errors CSV of a finished upload; a 400 while it runs."""
    if upload.is_active:
        raise ApplicationError(
            f"Job {upload.pk} is {upload.status}: its errors can be downloaded once it has finished.",
            status=400, code=ErrorCode.NOT_COMPLETED,
        )
    return errors_csv(upload)


def template_csv(job_type: str) -> str:
    return "".join(_stream(column_names(job_type), []))


def template_xlsx(job_type: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=f"{job_type} upload")
    sheet.append(column_names(job_type))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
