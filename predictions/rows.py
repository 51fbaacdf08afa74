"""Validating and scoring one batch of rows, vectorised.

Every check is a boolean mask over the batch; a row failing any check is
recorded as an error naming each problem (``Missing required field: sector;
Invalid market cap value``) and the others are scored together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from django.conf import settings

from predictions import scoring
from predictions.readers import Batch
from predictions.schema import Column, Kind, columns_for

NUMBER_PATTERN = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"

#: Columns of the predictions table in storage order (predictions/storage.py).
PREDICTION_COLUMNS = (
    "upload_id", "row_number", "company_symbol", "company_name", "sector", "fiscal_year", "fiscal_quarter",
    "probability_of_default", "o_score", "z_score", "risk_band",
)


@dataclass
class RowFailure:
    row_number: int
    company_symbol: str
    error: str
    values: dict


@dataclass
class BatchOutcome:
    predictions: pa.Table  # PREDICTION_COLUMNS
    failures: list[RowFailure]

    @property
    def processed(self) -> int:
        return self.predictions.num_rows + len(self.failures)


def _texts(table: pa.Table, name: str) -> pa.Array:
    """The column's cells without surrounding whitespace (all null if the optional column is absent)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return pc.utf8_trim_whitespace(column)


def _present(texts) -> np.ndarray:
    return pc.fill_null(pc.greater(pc.utf8_length(texts), 0), False).to_numpy(zero_copy_only=False)


def parse_numbers(texts) -> tuple[np.ndarray, np.ndarray]:
    """(values, invalid) of trimmed strings: values are NaN where a cell is
    missing or invalid; ``invalid`` marks present cells that are not finite
    numbers (``1,234``, ``abc``, ``inf``)."""
    present = _present(texts)
    cleaned = pc.if_else(pa.array(present), texts, pa.scalar(None, pa.string()))
    try:
        values = pc.cast(cleaned, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some cell is not a number: keep only those that look like one.
        looks_numeric = pc.fill_null(pc.match_substring_regex(cleaned, NUMBER_PATTERN), False)
        values = pc.cast(pc.if_else(looks_numeric, cleaned, pa.scalar(None, pa.string())), pa.float64())
    array = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    invalid = present & ~np.isfinite(array)
    array = np.where(present & ~invalid, array, np.nan)
    return array, invalid


def _oversized_cells(table: pa.Table) -> list[tuple[np.ndarray, str]]:
    """(mask, message) for each column, the unknown ones too, with a cell over
    PREDICTIONS_MAX_CELL_BYTES (one vectorised maximum per column when none is)."""
    limit = settings.PREDICTIONS_MAX_CELL_BYTES
    failures = []
    for name in table.column_names:
        lengths = pc.binary_length(table.column(name))
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limit:
            mask = pc.fill_null(pc.greater(lengths, limit), False).to_numpy(zero_copy_only=False)
            failures.append((mask, f"Cell {name} is longer than {limit:,} bytes (PREDICTIONS_MAX_CELL_BYTES)"))
    return failures


def _capped(value):
    """A cell as kept with its row error: an oversized one cut to the limit."""
    limit = settings.PREDICTIONS_MAX_CELL_BYTES
    if isinstance(value, str) and len(value) > limit // 4 and len(value.encode("utf-8")) > limit:
        return value.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    return value


def _checks(table: pa.Table, job_type: str):
    """Per column: its parsed values, and the (mask, message) of every failed check."""
    n = table.num_rows
    failures: list[tuple[np.ndarray, str]] = _oversized_cells(table)
    values: dict[str, object] = {}
    for column in columns_for(job_type):
        texts = _texts(table, column.name)
        present = _present(texts)
        if column.required:
            failures.append((~present, f"Missing required field: {column.name}"))
        if column.kind == Kind.TEXT:
            values[column.name] = pc.fill_null(texts, "")
            if column.max_length:
                too_long = pc.fill_null(pc.greater(pc.utf8_length(texts), column.max_length), False)
                failures.append((too_long.to_numpy(zero_copy_only=False),
                                 f"Invalid {column.label} value (at most {column.max_length} characters)"))
            continue
        numbers, invalid = parse_numbers(texts)
        message = f"Invalid {column.label} value"
        failures.append((invalid, message))  # not a number at all
        ok = present & ~invalid
        out_of_range = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            if column.kind == Kind.INTEGER:
                out_of_range |= ok & (np.floor(numbers) != numbers)
            if column.minimum is not None:
                below = (numbers <= column.minimum) if column.exclusive_minimum else (numbers < column.minimum)
                out_of_range |= ok & below
            if column.maximum is not None:
                out_of_range |= ok & (numbers > column.maximum)
        failures.append((out_of_range, message + _range_hint(column)))
        bad = invalid | out_of_range
        values[column.name] = np.where(present & ~bad, numbers, np.nan)
    # Balance-sheet consistency.
    with np.errstate(invalid="ignore"):
        failures.append((values["current_assets"] > values["total_assets"],
                         "Invalid current assets value (greater than total assets)"))
        failures.append((values["current_liabilities"] > values["total_liabilities"],
                         "Invalid current liabilities value (greater than total liabilities)"))
    return values, failures, n


def _range_hint(column: Column) -> str:
    if column.kind == Kind.INTEGER and column.minimum is not None and column.maximum is not None:
        return f" (a whole number from {column.minimum:g} to {column.maximum:g})"
    if column.minimum is not None:
        return f" (must be {'greater than' if column.exclusive_minimum else 'at least'} {column.minimum:g})"
    return ""


def score_batch(batch: Batch, *, job_type: str, upload_id: str) -> BatchOutcome:
    table = batch.table
    values, failures, n = _checks(table, job_type)
    bad = np.zeros(n, dtype=bool)
    for mask, _ in failures:
        bad |= mask
    outcome_failures: list[RowFailure] = [
        RowFailure(row_number=number, company_symbol="", error=message, values={}) for number, message in batch.malformed
    ]
    bad_index = np.flatnonzero(bad)
    if len(bad_index):
        symbols = values["company_symbol"].take(pa.array(bad_index)).to_pylist()
        originals = table.take(pa.array(bad_index)).to_pylist()
        masks = [(mask[bad_index], message) for mask, message in failures if mask[bad_index].any()]
        for position, index in enumerate(bad_index):
            error = "; ".join(message for mask, message in masks if mask[position])
            outcome_failures.append(RowFailure(
                row_number=int(batch.row_numbers[index]), company_symbol=symbols[position] or "",
                error=error, values={k: _capped(v) for k, v in originals[position].items()},
            ))
    good = ~bad
    keep = pa.array(good)

    def numeric(name):
        return values[name][good]

    quarterly = job_type == "quarterly"
    flow = scoring.annualise if quarterly else (lambda a: a)
    financials = scoring.Financials(
        total_assets=numeric("total_assets"),
        total_liabilities=numeric("total_liabilities"),
        current_assets=numeric("current_assets"),
        current_liabilities=numeric("current_liabilities"),
        retained_earnings=numeric("retained_earnings"),
        ebit=flow(numeric("ebit")),
        net_income=flow(numeric("net_income")),
        net_income_prior=flow(numeric("net_income_same_quarter_prior_year" if quarterly else "net_income_prior_year")),
        funds_from_operations=flow(numeric("funds_from_operations")),
    )
    scores = scoring.score(financials)
    count = int(good.sum())
    predictions = pa.table({
        "upload_id": pa.array([upload_id] * count, pa.string()) if count else pa.array([], pa.string()),
        "row_number": pa.array(batch.row_numbers[good], pa.int64()),
        "company_symbol": pc.filter(values["company_symbol"], keep),
        "company_name": pc.filter(values["company_name"], keep),
        "sector": pc.filter(values["sector"], keep),
        "fiscal_year": pa.array(numeric("fiscal_year").astype(np.int64), pa.int64()),
        "fiscal_quarter": (pa.array(numeric("fiscal_quarter").astype(np.int64), pa.int64()) if quarterly
                           else pa.nulls(count, pa.int64())),
        "probability_of_default": pa.array(scores.probability_of_default, pa.float64()),
        "o_score": pa.array(scores.o_score, pa.float64()),
        "z_score": pa.array(scores.z_score, pa.float64()),
        "risk_band": pa.array(scores.risk_band, pa.string()),
    })
    outcome_failures.sort(key=lambda failure: failure.row_number)
    return BatchOutcome(predictions=predictions, failures=outcome_failures)
