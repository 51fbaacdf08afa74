"""Builders of bulk-upload files for the predictions tests (small, in tmp_path or memory)."""
from __future__ import annotations

import csv
import io
import zipfile

from predictions.schema import column_names

GOOD_ANNUAL = {
    "company_symbol": "ACME", "company_name": "Acme Inc", "sector": "Industrials", "fiscal_year": "2024",
    "market_cap": "1500", "total_assets": "1000", "total_liabilities": "600", "current_assets": "400",
    "current_liabilities": "200", "retained_earnings": "150", "ebit": "80", "net_income": "50",
    "net_income_prior_year": "40", "funds_from_operations": "120",
}


def annual_row(i: int = 0, **overrides) -> dict:
    row = dict(GOOD_ANNUAL, company_symbol=f"SYM{i}", company_name=f"Company {i}")
    row.update(overrides)
    return row


def quarterly_row(i: int = 0, **overrides) -> dict:
    row = annual_row(i)
    row.pop("net_income_prior_year")
    row.update(fiscal_quarter="2", ebit="20", net_income="12.5", net_income_same_quarter_prior_year="10",
               funds_from_operations="30")
    row.update(overrides)
    return row


def csv_bytes(rows: list[dict], job_type: str = "annual", header: list[str] | None = None) -> bytes:
    header = header or column_names(job_type)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[dict], job_type: str = "annual", *, numbers: bool = True) -> bytes:
    from openpyxl import Workbook

    header = column_names(job_type)
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)

    def cell(value):
        if numbers:
            try:
                return float(value) if "." in value or "e" in value.lower() else int(value)
            except (TypeError, ValueError, AttributeError):
                return value
        return value

    for row in rows:
        sheet.append([cell(row.get(name)) if row.get(name) not in (None, "") else None for name in header])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def replace_in_zip(data: bytes, member: str, content: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == member else source.read(info.filename))
    return out.getvalue()


def billion_laughs(root: str) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{"".join(f"&lol{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    ]
    return (f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{"".join(entities)}]>\n'
            f'<{root} xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">&lol9;</{root}>').encode()


def zip_bomb_xlsx(uncompressed_mb: int = 60) -> bytes:
    """An XLSX-shaped zip whose worksheet unzips to ``uncompressed_mb`` of spaces."""
    valid = xlsx_bytes([annual_row()])
    source = zipfile.ZipFile(io.BytesIO(valid))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename.startswith("xl/worksheets/"):
                with target.open(info.filename, "w") as member:
                    block = b" " * (1024 * 1024)
                    for _ in range(uncompressed_mb):
                        member.write(block)
            else:
                target.writestr(info.filename, source.read(info.filename))
    return out.getvalue()
