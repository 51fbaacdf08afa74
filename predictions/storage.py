"""Bulk storage of predictions and row errors: what each database is good at.

PostgreSQL gets ``COPY ... FROM STDIN`` through psycopg, fed with CSV that
pyarrow writes in C++ (no Python object per cell); SQLite gets one
``executemany`` per batch on the raw connection. Both run inside the caller's
transaction (Django's atomic block uses the same connection).
"""
from __future__ import annotations

import pyarrow as pa

from django.db import connection

from predictions.models import Prediction, RowError
from predictions.rows import PREDICTION_COLUMNS, RowFailure

ERROR_BATCH_SIZE = 2_000


def _columns_sql() -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(name) for name in PREDICTION_COLUMNS)


def predictions_store(table: pa.Table) -> int:
    """Insert the rows of ``table`` (PREDICTION_COLUMNS) into the predictions table."""
    if table.num_rows == 0:
        return 0
    table = table.select(list(PREDICTION_COLUMNS))
    name = connection.ops.quote_name(Prediction._meta.db_table)
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
        with connection.connection.cursor() as cursor:
            with cursor.copy(f"COPY {name} ({_columns_sql()}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(memoryview(sink.getvalue()))
    else:
        placeholders = ", ".join("?" for _ in PREDICTION_COLUMNS)
        rows = zip(*(table.column(column).to_pylist() for column in PREDICTION_COLUMNS))
        connection.connection.executemany(f"INSERT INTO {name} ({_columns_sql()}) VALUES ({placeholders})", rows)
    return table.num_rows


def row_errors_store(upload_id, failures: list[RowFailure]) -> int:
    if not failures:
        return 0
    RowError.objects.bulk_create(
        [RowError(upload_id=upload_id, row_number=f.row_number, company_symbol=f.company_symbol[:255], error=f.error,
                  values=f.values) for f in failures],
        batch_size=ERROR_BATCH_SIZE,
    )
    return len(failures)
