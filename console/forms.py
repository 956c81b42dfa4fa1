"""Reading numbers and dates typed in console forms, with Vietnamese messages per field."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def read_int(
    form: Any, name: str, label: str, low: int, high: int, errors: dict[str, str], *, optional: bool = True
) -> int | None:
    """'1.000' or '1000' -> 1000; a blank optional field -> None; otherwise an error under `name`."""
    raw = str(form.get(name, "")).replace(".", "").replace(" ", "").strip()
    if not raw:
        if not optional:
            errors[name] = f"{label}: cần nhập."
        return None
    try:
        value = int(raw)
    except ValueError:
        errors[name] = f"{label}: cần một số nguyên."
        return None
    if not low <= value <= high:
        errors[name] = f"{label}: từ {low:,} đến {high:,}.".replace(",", ".")
        return None
    return value


def read_date(form: Any, name: str, errors: dict[str, str]) -> date | None:
    """'2026-12-01' (a date field) or '01/12/2026'; blank -> None."""
    raw = str(form.get(name, "")).strip()
    if not raw:
        return None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(raw, pattern).date()
        except ValueError:
            continue
    errors[name] = "Ngày không hợp lệ, ví dụ 01/12/2026."
    return None
