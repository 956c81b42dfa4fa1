"""Members and ledger as CSV (streamed, UTF-8 with BOM so Excel shows Vietnamese) or XLSX (write-only)."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, send_file
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.history import KIND_LABELS
from console.admin.reports import MemberFilter, member_query
from loyalty.birthdays import show_birthday
from loyalty.phones import display_phone
from models import EntryKind, LedgerEntry, Member, Tier

BATCH = 2000
STATUS_LABELS = {"active": "Hoạt động", "blocked": "Đã khóa"}
Table = tuple[list[str], Iterator[list[Any]]]
TableBuilder = Callable[[Session], Table]  # members_table or ledger_table with its arguments bound


def members_table(session: Session, *, tz: ZoneInfo, flt: MemberFilter, now: datetime) -> Table:
    """The members the list shows for `flt` (all of them for an empty filter), oldest first."""
    headers = [
        "Mã",
        "Họ tên",
        "Số điện thoại",
        "Ngày sinh",
        "Hạng",
        "Điểm",
        "Tổng điểm tích",
        "Ngày tham gia",
        "Trạng thái",
        "Zalo",
        "Nguồn",
    ]
    stmt = (
        member_query(session, flt, now)
        .add_columns(Tier.name)
        .outerjoin(Tier, Tier.id == Member.tier_id)
        .order_by(Member.id)
        .execution_options(yield_per=BATCH)
    )

    def rows() -> Iterator[list[Any]]:
        for member, tier in session.execute(stmt):
            yield [
                member.code,
                member.name,
                display_phone(member.phone).replace(" ", "") if member.phone else "",
                show_birthday(member.birthday) if member.birthday else "",
                tier or "",
                member.points_balance,
                member.points_lifetime,
                member.joined_at.astimezone(tz).strftime("%d/%m/%Y"),
                STATUS_LABELS.get(member.status, member.status),
                "có" if member.zalo_user_id else "không",
                member.source,
            ]

    return headers, rows()


def ledger_table(session: Session, *, tz: ZoneInfo, since: datetime, until: datetime) -> Table:
    headers = [
        "Thời gian",
        "Mã thành viên",
        "Thành viên",
        "Loại",
        "Điểm",
        "Số dư sau",
        "Hóa đơn (đ)",
        "Tham chiếu",
        "Nội dung",
        "Người thực hiện",
    ]
    stmt = (
        select(LedgerEntry, Member.code, Member.name)
        .join(Member, Member.id == LedgerEntry.member_id)
        .where(LedgerEntry.created_at >= since, LedgerEntry.created_at < until)
        .order_by(LedgerEntry.id)
        .execution_options(yield_per=BATCH)
    )

    def rows() -> Iterator[list[Any]]:
        for entry, code, name in session.execute(stmt):
            yield [
                entry.created_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
                code,
                name,
                KIND_LABELS.get(EntryKind(entry.kind), entry.kind),
                entry.points,
                entry.balance_after,
                entry.bill_amount or "",
                entry.source_ref or "",
                entry.reason,
                entry.actor_id or entry.actor_type,
            ]

    return headers, rows()


def export_response(sessions: sessionmaker[Session], build: TableBuilder, kind: str, name: str) -> Response:
    """CSV streams from its own Session (the request has ended while a large file is sent); XLSX is built first."""
    if kind == "csv":
        response = Response(_csv_stream(sessions, build), mimetype="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    with sessions() as session:
        workbook = _xlsx(*build(session))
    return send_file(
        workbook,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{name}.xlsx",
    )


def _csv_stream(sessions: sessionmaker[Session], build: TableBuilder) -> Iterator[str]:
    with sessions() as session:
        yield from _csv_chunks(*build(session))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text that a spreadsheet would run as a formula (a member named "=HYPERLINK(...)") gets a leading
    apostrophe, which Excel and LibreOffice show as plain text. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_chunks(headers: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # the BOM tells Excel the file is UTF-8
    writer.writerow(headers)
    for count, row in enumerate(rows, start=1):
        writer.writerow([neutralise(value) for value in row])
        if count % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    """Texts as text cells: openpyxl would otherwise store a value starting with "=" as a formula."""
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, value=neutralise(value))
    cell.data_type = "s"
    return cell


def _xlsx(headers: list[str], rows: Iterable[list[Any]]) -> Any:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Dữ liệu")
    sheet.append(headers)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 - send_file closes it
    workbook.save(spool)
    spool.seek(0)
    return spool
