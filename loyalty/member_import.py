"""Member lists from CSV or Excel: read the table, check every row, merge by phone. No Flask.

The shop's "upload the birthday list" case: columns are found by their (Vietnamese or English) headers,
phones and birthdays are normalised the way the chat reads them, and each row becomes one of
create / update / same / error. A phone is required: it is what makes a second upload of the same file
merge instead of duplicating, and what links the member when they later register in the chat.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.birthdays import BadInput, parse_birthday, show_birthday
from loyalty.groups import GroupNameError, add_to_group, split_groups
from loyalty.members import NewMember, create_members
from loyalty.phones import normalize_phone
from loyalty.text import fold
from models import Member, MemberGroup

MAX_UPLOAD = 15 * 1024 * 1024  # under the app's 16 MB request limit, multipart overhead included
# What a workbook *declares* (A1:XFD1048576) is ignored: only these many rows and columns are ever read.
MAX_ROWS = 200_000
MAX_COLUMNS = 30
PLAN_CHUNK = 1000  # phones per IN (...) query, well under SQLite's variable limit
SAMPLE = 20
COLUMNS = {
    "name": {"ho ten", "ho va ten", "ten", "name", "full name", "ten khach hang", "khach hang", "ten khach"},
    "phone": {"so dien thoai", "sdt", "dien thoai", "phone", "so dt", "mobile", "dt", "phone number"},
    "birthday": {"ngay sinh", "sinh nhat", "birthday", "dob", "date of birth", "ngay thang nam sinh"},
    "groups": {"nhom", "nhom khach", "nhom khach hang", "group", "groups", "phan loai"},
}
BIRTHDAY_ERRORS = {
    "format": "Ngày sinh không đọc được (ví dụ 12/05/1990 hoặc 12/05).",
    "no_such_day": "Ngày sinh không có thật.",
    "year": "Năm sinh không hợp lý.",
}


class ImportFileError(ValueError):
    """The file as a whole cannot be read; the message says why, in Vietnamese."""


@dataclass
class PlannedRow:
    line: int  # as the person sees it in their spreadsheet (header = line 1)
    name: str
    phone: str | None
    birthday: date | None
    groups: list[str] = field(default_factory=list)  # the "Nhóm" column: added to, never taken from
    action: str = "create"  # create | update | same | error
    message: str = ""
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def birthday_text(self) -> str:
        return show_birthday(self.birthday) if self.birthday else ""


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    error_rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rows: Iterable[PlannedRow], cap: int = 500) -> None:
        for row in rows:
            if row.action == "create":
                self.created += 1
            elif row.action == "update":
                self.updated += 1
            elif row.action == "same":
                self.unchanged += 1
            else:
                self.errors += 1
                if len(self.error_rows) < cap:
                    self.error_rows.append({"line": row.line, "message": row.message})


def read_table(filename: str, content: bytes, limit: int | None = None) -> list[list[Any]]:
    """The rows of the first sheet (XLSX) or of the CSV, header included, as cell values (the first `limit`).

    At most MAX_COLUMNS columns are read; a file with more than MAX_ROWS rows is refused as a whole (the page
    says to split it) rather than imported in part.
    """
    if not content:
        raise ImportFileError("Tệp trống.")
    wanted = MAX_ROWS + 1 if limit is None else min(limit, MAX_ROWS + 1)
    if filename.lower().endswith((".xlsx", ".xlsm")):
        table = _read_xlsx(content, wanted)
    elif filename.lower().endswith((".csv", ".txt")):
        table = _read_csv(content, wanted)
    else:
        raise ImportFileError("Chỉ nhận tệp .csv hoặc .xlsx (Excel).")
    if len(table) > MAX_ROWS:
        raise ImportFileError(f"Tệp có hơn {MAX_ROWS:,} dòng. Hãy chia thành nhiều tệp nhỏ hơn.".replace(",", "."))
    return table


def data_rows(table: list[list[Any]]) -> tuple[dict[str, int], list[tuple[int, list[Any]]]]:
    """({field: column index}, [(line, cells)]) after the header row; blank lines are dropped."""
    header_at = next((i for i, row in enumerate(table) if any(_text(c) for c in row)), None)
    if header_at is None:
        raise ImportFileError("Tệp không có dữ liệu.")
    columns: dict[str, int] = {}
    for index, cell in enumerate(table[header_at]):
        key = fold(_text(cell)).replace("*", "").replace(":", "").strip()
        for name, aliases in COLUMNS.items():
            if key in aliases and name not in columns:
                columns[name] = index
    if "phone" not in columns:
        raise ImportFileError("Không tìm thấy cột số điện thoại (đặt tiêu đề “Số điện thoại” hoặc “SĐT” ở dòng đầu).")
    rows = [(i + 1, row) for i, row in enumerate(table) if i > header_at and any(_text(c) for c in row)]
    return columns, rows


def plan_rows(
    session: Session,
    columns: dict[str, int],
    rows: list[tuple[int, list[Any]]],
    today: date,
    *,
    overwrite: bool,
    seen: dict[str, int] | None = None,
) -> list[PlannedRow]:
    """What each row would do. `seen` (phone -> first line) carries duplicates across chunks of one file."""
    seen = {} if seen is None else seen
    planned = [_read_row(line, cells, columns, today) for line, cells in rows]
    phones = [p.phone for p in planned if p.phone]
    existing = {m.phone: m for m in session.scalars(select(Member).where(Member.phone.in_(phones)))} if phones else {}
    held: dict[int, set[str]] = {}
    if existing and any(p.groups for p in planned):
        stmt = select(MemberGroup.member_id, MemberGroup.name).where(
            MemberGroup.member_id.in_([m.id for m in existing.values()])
        )
        for member_id, group in session.execute(stmt):
            held.setdefault(member_id, set()).add(group)
    for row in planned:
        if row.action == "error" or row.phone is None:
            continue
        if row.phone in seen:
            row.action, row.message = "error", f"Trùng số điện thoại với dòng {seen[row.phone]}."
            continue
        seen[row.phone] = row.line
        member = existing.get(row.phone)
        if member is not None:
            row.changes = _changes(member, row, overwrite)
            mine = held.get(member.id, set())
            if set(row.groups) - mine:
                row.changes["groups"] = (sorted(mine), sorted(mine | set(row.groups)))
            row.action = "update" if row.changes else "same"
    return planned


def apply_rows(session: Session, planned: list[PlannedRow], now: datetime) -> None:
    """Write the planned rows (re-planned just before, in the same transaction, so it merges by phone)."""
    creates = [r for r in planned if r.action == "create"]
    updates = {r.phone: r for r in planned if r.action == "update"}
    grouped: dict[str, list[str]] = {}  # phone -> groups to add
    if updates:
        for member in session.scalars(select(Member).where(Member.phone.in_(list(updates)))):
            for attribute, (_old, new) in updates[member.phone].changes.items():
                if attribute != "groups":
                    setattr(member, attribute, new)
            if "groups" in updates[member.phone].changes:
                grouped[member.phone or ""] = updates[member.phone].groups
    session.flush()
    create_members(session, [NewMember(r.name, r.phone, r.birthday) for r in creates], now=now, source="import")
    grouped.update({r.phone: r.groups for r in creates if r.groups and r.phone})
    if grouped:
        members = session.execute(select(Member.phone, Member.id).where(Member.phone.in_(list(grouped))))
        for phone, member_id in members:
            for group in grouped.get(phone or "", []):
                add_to_group(session, [member_id], group, now)


@dataclass
class Preview:
    total: int
    counts: ImportCounts
    sample: list[PlannedRow]


def preview(session: Session, filename: str, content: bytes, today: date, *, overwrite: bool) -> Preview:
    """Every row checked against the members on file, nothing written."""
    columns, rows = data_rows(read_table(filename, content))
    counts, seen, sample = ImportCounts(), dict[str, int](), list[PlannedRow]()
    for chunk in chunks(rows, PLAN_CHUNK):
        planned = plan_rows(session, columns, chunk, today, overwrite=overwrite, seen=seen)
        counts.add(planned)
        sample.extend(planned[: SAMPLE - len(sample)])
    return Preview(len(rows), counts, sample)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- internals -----------------------------------------------------------------------------------------


def _read_row(line: int, cells: list[Any], columns: dict[str, int], today: date) -> PlannedRow:
    def cell(name: str) -> Any:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else None

    name = " ".join(_text(cell("name")).split())[:200]
    raw_phone = cell("phone")
    phone = _phone(raw_phone)
    row = PlannedRow(line=line, name=name, phone=phone, birthday=None)
    if not _text(raw_phone):
        row.action, row.message = "error", "Thiếu số điện thoại."
        return row
    if phone is None:
        row.action, row.message = "error", f"Số điện thoại “{_text(raw_phone)}” không hợp lệ."
        return row
    try:
        row.birthday = _birthday(cell("birthday"), today)
    except BadInput as exc:
        row.action, row.message = "error", BIRTHDAY_ERRORS.get(str(exc), BIRTHDAY_ERRORS["format"])
        return row
    try:
        row.groups = split_groups(_text(cell("groups")))
    except GroupNameError as exc:
        row.action, row.message = "error", f"Cột Nhóm: {exc}"
    return row


def _changes(member: Member, row: PlannedRow, overwrite: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for attribute, new in (("name", row.name), ("birthday", row.birthday)):
        old = getattr(member, attribute)
        if new and new != old and (overwrite or not old):
            changes[attribute] = (old, new)
    return changes


def _phone(value: Any) -> str | None:
    text = _text(value)
    if isinstance(value, int | float) or text.isdigit():
        digits = text.split(".")[0]
        # Excel drops the leading 0 of "0912345678" when the column is a number.
        if len(digits) == 9 and digits[0] in "35789":
            text = "0" + digits
    return normalize_phone(text)


def _birthday(value: Any, today: date) -> date | None:
    if value is None or _text(value) == "":
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        if not 1900 <= value.year <= today.year or value > today:
            raise BadInput("year")
        return value
    text = _text(value)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":  # 1990-05-12
        text = f"{text[8:10]}/{text[5:7]}/{text[0:4]}"
    return parse_birthday(text, today)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv(content: bytes, limit: int | None) -> list[list[Any]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1258", errors="replace")  # Windows Vietnamese, from older Excel
    text = unicodedata.normalize("NFC", text)  # cp1258 and macOS files spell tones as combining marks
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        return [row[:MAX_COLUMNS] for row in islice(csv.reader(io.StringIO(text), dialect), limit)]
    except csv.Error as exc:  # a field over csv's size limit, a stray NUL: not a member list
        raise ImportFileError("Không đọc được tệp CSV. Hãy lưu lại từ Excel dưới dạng CSV UTF-8.") from exc


def _read_xlsx(content: bytes, limit: int | None) -> list[list[Any]]:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise ImportFileError("Không mở được tệp Excel. Hãy lưu lại dưới dạng .xlsx rồi tải lên.") from exc
    try:
        sheet = workbook.worksheets[0]
        # The declared dimension is the sender's word: a 1.5 KB file can declare A1:XFD1048576, and
        # openpyxl would pad every row to it. Read only the cells that exist, and only the first columns.
        sheet.reset_dimensions()
        rows = sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True)
        return [list(row) for row in islice(rows, limit)]
    except Exception as exc:  # a damaged sheet inside a valid zip: the same answer as a damaged file
        raise ImportFileError("Không mở được tệp Excel. Hãy lưu lại dưới dạng .xlsx rồi tải lên.") from exc
    finally:
        workbook.close()
