"""Receiving an upload: the file streams straight into PREDICTIONS_STORAGE_DIR
(never into memory), and is checked on the way — size, type, UTF-8 — so a
100 MB file is stored and judged in one pass.
"""
from __future__ import annotations

import codecs
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from jobsite.exceptions import ApplicationError
from predictions.errors import ErrorCode

UPLOAD_FIELD = "file"
HEAD_BYTES = 64 * 1024  # kept in memory for the header check
ZIP_MAGIC = b"PK\x03\x04"
EXTENSIONS = {".csv": "csv", ".xlsx": "xlsx"}
# A multipart body carries the file plus boundaries and headers.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def max_upload_bytes() -> int:
    return settings.PREDICTIONS_MAX_UPLOAD_MB * 1024 * 1024


def too_large(size: int | None = None) -> ApplicationError:
    limit = settings.PREDICTIONS_MAX_UPLOAD_MB
    got = f" ({size / 1024 / 1024:.1f} MB)" if size else ""
    return ApplicationError(
        f"File too large{got}: the limit is {limit} MB (PREDICTIONS_MAX_UPLOAD_MB).",
        status=413, code=ErrorCode.FILE_TOO_LARGE,
    )


def upload_dir() -> Path:
    path = Path(settings.PREDICTIONS_STORAGE_DIR) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_file(relative: str) -> Path:
    return Path(settings.PREDICTIONS_STORAGE_DIR) / relative


def remove_stored(relative: str) -> None:
    if relative:
        try:
            stored_file(relative).unlink()
        except FileNotFoundError:
            pass


def file_format_for(filename: str) -> str:
    """The format a file name promises, or a 400 naming the extension."""
    extension = os.path.splitext(filename or "")[1].lower()
    if extension not in EXTENSIONS:
        shown = f"'{extension}'" if extension else "(no extension)"
        hint = " (save old .xls workbooks as .xlsx)" if extension == ".xls" else ""
        raise ApplicationError(
            f"Unsupported file type {shown}: upload a .csv or an .xlsx file{hint}.",
            status=400, code=ErrorCode.FILE_TYPE,
        )
    return EXTENSIONS[extension]


class StoredUpload(UploadedFile):
    """The uploaded file, already in storage, with what was learnt while it streamed."""

    def __init__(self, *, path: Path, name: str, size: int, head: bytes, newlines: int, last_byte: bytes,
                 has_data: bool, problem: ApplicationError | None):
        super().__init__(file=None, name=name, size=size)
        self.path = path
        self.head = head
        self.line_count = newlines
        self.last_byte = last_byte
        self.has_data = has_data
        self.problem = problem

    @property
    def relative_path(self) -> str:
        return str(self.path.relative_to(Path(settings.PREDICTIONS_STORAGE_DIR)))

    def estimated_csv_rows(self) -> int:
        lines = self.line_count + (1 if self.last_byte not in (b"", b"\n") else 0)
        return max(lines - 1, 0)

    def open(self, mode="rb"):  # pragma: no cover - not used; the file is read by path
        return open(self.path, mode)


class StoredUploadHandler(FileUploadHandler):
    """Writes the multipart ``file`` field into storage chunk by chunk; refuses
    it past the size limit; for CSV, checks UTF-8 and counts lines on the way.

    A problem found mid-stream (bad bytes, say) is kept and raised by the view
    once the body is read, so the client gets a clean 400 instead of a reset
    connection; nothing more is written meanwhile."""

    chunk_size = 1024 * 1024

    def __init__(self, request=None):
        super().__init__(request)
        self.path: Path | None = None
        self._fh = None
        self._active = False
        self._declared_format = None

    # -- the whole body ------------------------------------------------------
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > max_upload_bytes() + MULTIPART_OVERHEAD_BYTES:
            raise too_large(content_length)

    # -- one file field ------------------------------------------------------
    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self._active = field_name == UPLOAD_FIELD and self.path is None
        if not self._active:
            return
        self._declared_format = file_format_for(file_name)  # 400 before anything is written
        self.path = upload_dir() / f"{uuid.uuid4()}.{self._declared_format}"
        self._fh = open(self.path, "wb")
        self._size = 0
        self._head = bytearray()
        self._newlines = 0
        self._last_byte = b""
        self._header_done = False
        self._has_data = False
        self._line_bytes = 0  # of the line not yet ended
        self._problem: ApplicationError | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def receive_data_chunk(self, raw_data, start):
        if not self._active:
            return None  # another field's file: dropped
        self._size += len(raw_data)
        if self._size > max_upload_bytes():
            raise too_large(self._size)
        if self._problem is not None:
            return None
        if len(self._head) < HEAD_BYTES:
            self._head += raw_data[: HEAD_BYTES - len(self._head)]
        if self._declared_format == "csv":
            self._check_csv_chunk(raw_data, start)
        if self._problem is None:
            self._fh.write(raw_data)
        return None

    def _check_csv_chunk(self, raw: bytes, start: int) -> None:
        if start == 0:
            if raw.startswith(ZIP_MAGIC):
                self._problem = ApplicationError(
                    "The file is named .csv but is a zip archive (an XLSX workbook?): name it .xlsx or export it as CSV.",
                    status=400, code=ErrorCode.FILE_TYPE,
                )
                return
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                self._problem = ApplicationError(
                    "The file is UTF-16 text: save it as 'CSV UTF-8' and upload it again.",
                    status=400, code=ErrorCode.FILE_ENCODING,
                )
                return
        if b"\x00" in raw:
            self._problem = ApplicationError(
                "The file is not a CSV text file (it contains NUL bytes): upload a .csv text file or an .xlsx workbook.",
                status=400, code=ErrorCode.FILE_TYPE,
            )
            return
        try:
            self._decoder.decode(raw, final=False)
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            line = self._newlines + raw.count(b"\n", 0, exc.start) + 1
            self._problem = ApplicationError(
                f"The file is not valid UTF-8 text: byte 0x{raw[exc.start]:02X} at line {line} (offset {offset}) "
                "cannot be decoded. Save it as 'CSV UTF-8' and upload it again.",
                status=400, code=ErrorCode.FILE_ENCODING,
            )
            return
        if not self._header_done:
            position = raw.find(b"\n")
            if position >= 0:
                self._header_done = True
                rest = raw[position + 1:]
            else:
                rest = b""
        else:
            rest = raw
        if rest and not self._has_data and rest.translate(None, b"\r\n \t"):
            self._has_data = True
        self._check_line_lengths(raw)
        self._newlines += raw.count(b"\n")
        if raw:
            self._last_byte = raw[-1:]

    def _check_line_lengths(self, raw: bytes) -> None:
        """Refuse a line over PREDICTIONS_MAX_LINE_BYTES: the reader needs each
        row inside one of its blocks. Linear in C (find/rfind, and numpy only
        when a chunk is longer than the limit and so could hold such a line)."""
        limit = settings.PREDICTIONS_MAX_LINE_BYTES
        first = raw.find(b"\n")
        if first < 0:
            self._line_bytes += len(raw)
            if self._line_bytes > limit:
                self._line_too_long(self._newlines + 1, limit)
            return
        if self._line_bytes + first > limit:
            self._line_too_long(self._newlines + 1, limit)
            return
        if len(raw) > limit:
            import numpy as np

            ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
            gaps = np.diff(ends) - 1
            if len(gaps) and int(gaps.max()) > limit:
                self._line_too_long(self._newlines + int(gaps.argmax()) + 2, limit)
                return
        self._line_bytes = len(raw) - raw.rfind(b"\n") - 1
        if self._line_bytes > limit:
            self._line_too_long(self._newlines + raw.count(b"\n") + 1, limit)

    def _line_too_long(self, line: int, limit: int) -> None:
        self._problem = ApplicationError(
            f"Line {line} of the file is longer than {limit:,} bytes, the limit per line "
            "(PREDICTIONS_MAX_LINE_BYTES): each row must be one line of at most that size.",
            status=400, code=ErrorCode.LINE_TOO_LONG,
        )

    def file_complete(self, file_size):
        if not self._active:
            return None
        self._active = False
        self._fh.close()
        if self._declared_format == "csv" and self._problem is None:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._problem = ApplicationError(
                    "The file is not valid UTF-8 text: it ends in the middle of a character. "
                    "Save it as 'CSV UTF-8' and upload it again.",
                    status=400, code=ErrorCode.FILE_ENCODING,
                )
        return StoredUpload(
            path=self.path, name=self.file_name, size=self._size, head=bytes(self._head), newlines=self._newlines,
            last_byte=self._last_byte, has_data=self._has_data, problem=self._problem,
        )

    def upload_interrupted(self):
        self.discard()

    def discard(self) -> None:
        """Remove what was written (the request failed)."""
        if self._fh is not None:
            self._fh.close()
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def store_local_file(path: Path, *, chunk_size: int = 1024 * 1024) -> StoredUpload:
    """Store a local file exactly as an HTTP upload is stored (same checks),
    for the CLI."""
    path = Path(path)
    size = path.stat().st_size
    handler = StoredUploadHandler()
    handler.handle_raw_input(None, {}, size, None)
    handler.new_file(UPLOAD_FIELD, path.name, "application/octet-stream", size)
    try:
        with open(path, "rb") as source:
            start = 0
            while chunk := source.read(chunk_size):
                handler.receive_data_chunk(chunk, start)
                start += len(chunk)
        return handler.file_complete(start)
    except BaseException:
        handler.discard()
        raise
