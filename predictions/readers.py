"""Reading upload files: the header check at upload time, and streaming the
rows in bounded batches in the worker.

Every batch is a ``pyarrow`` table of *string* columns (the validation in
predictions/rows.py parses and checks them, so a bad cell is a row error,
never a failed file) plus the spreadsheet row number of each row.

CSV goes through pyarrow's streaming CSV reader (C++): parsing and numeric
conversion of a 1,000,000-row file take about a second, against ~12 s for the
standard ``csv`` module plus numpy on the same machine (docs/benchmarks.md,
"Bulk predictions"), which alone would miss the 100,000 rows/s target.

XLSX goes through openpyxl in read-only (streaming) mode. openpyxl parses XML
with defusedxml when it is installed (a dependency here), so entity
declarations (billion laughs) are refused; the zip itself is checked before
any XML is parsed (sizes and compression ratios: zip bombs).
"""
from __future__ import annotations

import csv
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from django.conf import settings

from jobsite.exceptions import ApplicationError
from predictions.errors import ErrorCode

# ~8,500 annual rows a batch. Bigger blocks are barely faster but the reader's buffers
# grow with them: 4 MB blocks put a worker's peak RSS near 400 MB, 1 MB keeps it near 260 MB.
CSV_BLOCK_BYTES = 1024 * 1024
BLOCK_SLACK_BYTES = 64 * 1024
XLSX_BATCH_ROWS = 2_000
XLSX_BATCH_SECONDS = 0.5
XLSX_MAX_MEMBERS = 10_000
XLSX_MAX_RATIO = 100  # a part that unzips to 100× its size and over 10 MB is a bomb
XLSX_RATIO_MIN_BYTES = 10 * 1024 * 1024


def _bad(message: str, code: ErrorCode = ErrorCode.FILE_UNREADABLE) -> ApplicationError:
    return ApplicationError(message, status=400, code=code)


def normalise_header(names) -> list[str]:
    return [str(name if name is not None else "").strip().lstrip("\ufeff").strip().lower() for name in names]


# ---------------------------------------------------------------------------
# Upload-time inspection
# ---------------------------------------------------------------------------
@dataclass
class Inspection:
    header: list[str]
    total_rows: int  # estimate


def inspect_csv(upload) -> Inspection:
    """Header of a stored CSV (from the bytes kept while it streamed)."""
    if upload.size == 0:
        raise _bad("The file is empty: it needs a header row and at least one data row.", ErrorCode.FILE_EMPTY)
    head = upload.head
    end = head.find(b"\n")
    if end < 0 and len(head) >= upload.size:
        end = len(head)
    if end < 0:
        raise _bad("The header row is longer than 64 KB: is this really a CSV file?", ErrorCode.HEADER_INVALID)
    line = head[:end].decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        header = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise _bad(f"The header row is not valid CSV: {exc}.", ErrorCode.HEADER_INVALID) from None
    header = normalise_header(header)
    if not any(header):
        raise _bad("The file has no header row: the first line is empty.", ErrorCode.HEADER_INVALID)
    if not upload.has_data:
        raise _bad("The file has a header row but no data rows.", ErrorCode.FILE_EMPTY)
    return Inspection(header=header, total_rows=upload.estimated_csv_rows())


def check_xlsx_archive(path: Path) -> None:
    """Refuse what is not a workbook, and zip bombs, before any XML is parsed."""
    if not zipfile.is_zipfile(path):
        raise _bad("The file is not a valid XLSX workbook (it is not a zip archive).", ErrorCode.FILE_TYPE)
    limit = settings.PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB * 1024 * 1024
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _bad(f"The file is not a valid XLSX workbook: {exc}.", ErrorCode.FILE_TYPE) from None
    if len(members) > XLSX_MAX_MEMBERS:
        raise _bad(f"The XLSX archive has {len(members)} parts: refused as unsafe.", ErrorCode.FILE_UNSAFE)
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        raise _bad("The file is a zip archive but not an XLSX workbook (no xl/workbook.xml).", ErrorCode.FILE_TYPE)
    total = sum(member.file_size for member in members)
    if total > limit:
        raise _bad(
            f"The XLSX workbook unzips to {total / 1024 / 1024:.0f} MB, over the limit of "
            f"{settings.PREDICTIONS_XLSX_MAX_UNCOMPRESSED_MB} MB: refused as a possible zip bomb.",
            ErrorCode.FILE_UNSAFE,
        )
    for member in members:
        if member.file_size > XLSX_RATIO_MIN_BYTES and member.file_size > XLSX_MAX_RATIO * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise _bad(
                f"The XLSX part {member.filename} unzips {ratio:.0f}× its compressed size "
                f"({member.file_size / 1024 / 1024:.0f} MB): refused as a possible zip bomb.",
                ErrorCode.FILE_UNSAFE,
            )


def _open_workbook(path: Path):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook, and wraps defusedxml's
        unsafe = _defused_cause(exc)
        if unsafe is not None:
            raise _unsafe_xml(unsafe) from None
        raise _bad(f"The file could not be read as an XLSX workbook: {type(exc).__name__}: {exc}.") from None


def _defused_cause(exc: BaseException | None):
    """The defusedxml refusal behind ``exc`` (openpyxl re-raises it as a ValueError), if any."""
    from defusedxml import DefusedXmlException

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DefusedXmlException):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _unsafe_xml(exc) -> ApplicationError:
    return _bad(
        f"The XLSX workbook contains XML entity or DTD declarations ({type(exc).__name__}): "
        "refused as a possible XML bomb.", ErrorCode.FILE_UNSAFE,
    )


def _cell_text(value) -> str | None:
    """A cell as the string a CSV would carry (None for an empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return text if text.strip() else None


def inspect_xlsx(path: Path) -> Inspection:
    from defusedxml import DefusedXmlException

    check_xlsx_archive(path)
    workbook = _open_workbook(path)
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise _bad("The XLSX workbook has no worksheet.", ErrorCode.FILE_EMPTY)
        rows = sheet.iter_rows(values_only=True)
        try:
            header_row = next(rows, None)
            if header_row is None or not any(_cell_text(v) for v in header_row):
                raise _bad("The first worksheet is empty: it needs a header row and at least one data row.",
                           ErrorCode.FILE_EMPTY)
            has_data = any(any(_cell_text(v) is not None for v in row) for row in _take(rows, 1000))
        except DefusedXmlException as exc:
            raise _unsafe_xml(exc) from None
        except ApplicationError:
            raise
        except Exception as exc:
            raise _bad(f"The worksheet could not be read: {type(exc).__name__}: {exc}.") from None
        if not has_data:
            raise _bad("The worksheet has a header row but no data rows.", ErrorCode.FILE_EMPTY)
        header = normalise_header(_trim_trailing_empty(header_row))
        try:
            total = max((sheet.max_row or 1) - 1, 0)
        except Exception:
            total = 0
        return Inspection(header=header, total_rows=total)
    finally:
        workbook.close()


def _take(iterator, n):
    for _, item in zip(range(n), iterator):
        yield item


def _trim_trailing_empty(row) -> list:
    values = list(row)
    while values and _cell_text(values[-1]) is None:
        values.pop()
    return values


# ---------------------------------------------------------------------------
# Streaming batches (the worker)
# ---------------------------------------------------------------------------
@dataclass
class Batch:
    """Rows as string columns named by the (normalised) header, and the
    spreadsheet row number of each (the header is row 1)."""

    table: pa.Table
    row_numbers: np.ndarray
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (row, message): rows with a wrong field count


def csv_batches(path: Path, header: list[str]) -> Iterator[Batch]:
    """Stream a CSV in blocks of CSV_BLOCK_BYTES. Rows with the wrong number of
    fields come back as ``malformed`` (row number, message), the others as
    string columns. Blank lines are skipped and not counted."""
    import pyarrow.csv as pacsv

    width = len(header)
    names = [name or f"column_{i + 1}" for i, name in enumerate(header)]
    malformed: list[tuple[int, str]] = []

    def on_invalid_row(row) -> str:
        malformed.append((int(row.number), f"Row has {row.actual_columns} fields, expected {width} "
                                           "(check for unquoted commas)"))
        return "skip"

    # A row must fit in one block: blocks hold the longest line an upload may have.
    block_size = max(CSV_BLOCK_BYTES, settings.PREDICTIONS_MAX_LINE_BYTES + BLOCK_SLACK_BYTES)
    next_row = 2
    try:
        reader = pacsv.open_csv(
            str(path),
            read_options=pacsv.ReadOptions(block_size=block_size, skip_rows=1, column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _unparsable(exc, next_row, block_size) from None
    while True:
        try:
            record_batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise _unparsable(exc, next_row, block_size) from None
        n = record_batch.num_rows
        skipped = np.array(sorted(number for number, _ in malformed if number >= next_row), dtype=np.int64)
        candidates = np.arange(next_row, next_row + n + len(skipped), dtype=np.int64)
        if len(skipped):
            candidates = candidates[~np.isin(candidates, skipped)]
        row_numbers = candidates[:n]
        last = int(row_numbers[-1]) if n else next_row - 1
        done = [item for item in malformed if item[0] <= last] if n else list(malformed)
        malformed[:] = [item for item in malformed if item not in done]
        next_row = max(last, max((number for number, _ in done), default=0)) + 1
        yield Batch(table=pa.Table.from_batches([record_batch]), row_numbers=row_numbers, malformed=done)
    if malformed:
        yield Batch(table=pa.table({name: pa.array([], pa.string()) for name in names}),
                    row_numbers=np.array([], dtype=np.int64), malformed=list(malformed))


def _unparsable(exc: pa.ArrowInvalid, next_row: int, block_size: int) -> ApplicationError:
    where = f"after row {next_row - 1}" if next_row > 2 else "near its start"
    if "straddl" in str(exc):  # pyarrow's words for a row larger than a block
        return _bad(f"The CSV file could not be read {where}: a row there is longer than {block_size:,} bytes "
                    "(PREDICTIONS_MAX_LINE_BYTES). Is a quoted cell with line breaks left open?",
                    ErrorCode.LINE_TOO_LONG)
    return _bad(f"The CSV file could not be parsed {where}: {exc}.")


def xlsx_batches(path: Path, header: list[str], *, clock: Callable[[], float] = time.monotonic) -> Iterator[Batch]:
    """Stream the first worksheet: batches of at most XLSX_BATCH_ROWS rows or
    XLSX_BATCH_SECONDS of reading, whichever comes first (openpyxl is slow,
    and progress must move at least every 2 s). Empty rows are skipped; row
    numbers are the sheet's."""
    from defusedxml import DefusedXmlException

    width = len(header)
    names = [name or f"column_{i + 1}" for i, name in enumerate(header)]
    workbook = _open_workbook(path)
    try:
        sheet = workbook.worksheets[0]
        columns: list[list] = [[] for _ in range(width)]
        numbers: list[int] = []
        malformed: list[tuple[int, str]] = []
        started = clock()
        try:
            for number, row in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
                cells = [_cell_text(v) for v in row]
                if not any(cell is not None for cell in cells):
                    continue
                if len(cells) > width and any(cell is not None for cell in cells[width:]):
                    malformed.append((number, f"Row has values beyond the {width} header columns"))
                else:
                    cells = (cells + [None] * width)[:width]
                    for i in range(width):
                        columns[i].append(cells[i])
                    numbers.append(number)
                if len(numbers) >= XLSX_BATCH_ROWS or clock() - started >= XLSX_BATCH_SECONDS:
                    yield _xlsx_batch(names, columns, numbers, malformed)
                    columns = [[] for _ in range(width)]
                    numbers, malformed = [], []
                    started = clock()
        except DefusedXmlException as exc:
            raise _unsafe_xml(exc) from None
        if numbers or malformed:
            yield _xlsx_batch(names, columns, numbers, malformed)
    finally:
        workbook.close()


def _xlsx_batch(names, columns, numbers, malformed) -> Batch:
    table = pa.table({name: pa.array(values, pa.string()) for name, values in zip(names, columns)})
    return Batch(table=table, row_numbers=np.asarray(numbers, dtype=np.int64), malformed=list(malformed))


def batches(path: Path, file_format: str, header: list[str]) -> Iterator[Batch]:
    return xlsx_batches(path, header) if file_format == "xlsx" else csv_batches(path, header)
