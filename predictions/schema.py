"""The column schema of each upload type, defined once: upload validation,
row validation, the templates, the samples and the README all follow it.

Money is in **millions of US dollars** (the unit matters: Ohlson's SIZE term
takes the logarithm of total assets, see predictions/scoring.py). Flows
(ebit, net income, funds from operations) cover the fiscal year for annual
rows and the fiscal quarter for quarterly rows (annualised ×4 for scoring).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    required: bool = True
    max_length: int | None = None  # text
    minimum: float | None = None  # numbers/integers: smallest allowed value
    exclusive_minimum: bool = False  # True: value must be > minimum
    maximum: float | None = None

    @property
    def label(self) -> str:
        """How error messages name the column: ``market cap``."""
        return self.name.replace("_", " ")


def _money(name: str, description: str, **kwargs) -> Column:
    return Column(name, Kind.NUMBER, f"{description} (millions of USD)", **kwargs)


_IDENTITY = [
    Column("company_symbol", Kind.TEXT, "Ticker or internal identifier", max_length=32),
    Column("company_name", Kind.TEXT, "Company name (may be empty)", required=False, max_length=255),
    Column("sector", Kind.TEXT, "Industry sector, e.g. Technology", max_length=100),
    Column("fiscal_year", Kind.INTEGER, "Fiscal year of the figures", minimum=1900, maximum=2100),
]
_BALANCE_SHEET = [
    _money("market_cap", "Market capitalisation at fiscal period end; recorded, not used by the model", minimum=0),
    _money("total_assets", "Total assets at period end", minimum=0, exclusive_minimum=True),
    _money("total_liabilities", "Total liabilities at period end", minimum=0, exclusive_minimum=True),
    _money("current_assets", "Current assets at period end", minimum=0, exclusive_minimum=True),
    _money("current_liabilities", "Current liabilities at period end", minimum=0),
    _money("retained_earnings", "Retained earnings (accumulated deficit negative) at period end"),
]

ANNUAL_COLUMNS: tuple[Column, ...] = (
    *_IDENTITY,
    *_BALANCE_SHEET,
    _money("ebit", "Earnings before interest and taxes for the fiscal year"),
    _money("net_income", "Net income for the fiscal year"),
    _money("net_income_prior_year", "Net income for the previous fiscal year"),
    _money("funds_from_operations", "Funds (cash) from operations for the fiscal year"),
)

QUARTERLY_COLUMNS: tuple[Column, ...] = (
    *_IDENTITY,
    Column("fiscal_quarter", Kind.INTEGER, "Fiscal quarter, 1 to 4", minimum=1, maximum=4),
    *_BALANCE_SHEET,
    _money("ebit", "Earnings before interest and taxes for the quarter"),
    _money("net_income", "Net income for the quarter"),
    _money("net_income_same_quarter_prior_year", "Net income for the same quarter one year earlier"),
    _money("funds_from_operations", "Funds (cash) from operations for the quarter"),
)

#: Columns of an errors.csv that a re-upload may carry (retry-failed).
RETRY_EXTRA_COLUMNS = ("row", "error")


def columns_for(job_type: str) -> tuple[Column, ...]:
    return QUARTERLY_COLUMNS if job_type == "quarterly" else ANNUAL_COLUMNS


def column_names(job_type: str) -> list[str]:
    return [column.name for column in columns_for(job_type)]


def header_problems(header: list[str], job_type: str, *, allow_extra: tuple[str, ...] = ()) -> str | None:
    """One sentence naming what is wrong with ``header`` (None when it is fine):
    duplicated, missing required and unknown columns."""
    columns = columns_for(job_type)
    known = {column.name for column in columns}
    problems = []
    seen, duplicated = set(), []
    for name in header:
        if name in seen and name not in duplicated:
            duplicated.append(name)
        seen.add(name)
    if duplicated:
        problems.append(f"duplicated columns: {', '.join(duplicated)}")
    missing = [column.name for column in columns if column.required and column.name not in seen]
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
    unknown = [name for name in header if name not in known and name not in allow_extra]
    if unknown:
        problems.append(f"unknown columns: {', '.join(repr(name) for name in unknown)}")
    if not problems:
        return None
    text = "; ".join(problems)
    return (f"Invalid header for a {job_type} upload: {text}. "
            f"Expected columns: {', '.join(column_names(job_type))} (company_name is optional).")
