"""Reading numbers and dates typed in console forms, with Vietnamese messages per field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist, and PostgreSQL would refuse to compare with it
MAX_PAGE = 100_000
YEARS = range(1900, 2201)  # dates typed anywhere; year 9999 would overflow the day after it


def bounded(low: int, high: int) -> Callable[[str], int]:
    """A `type=` for request.args/form.get: an int in [low, high], else ValueError (so .get gives the default)."""

    def convert(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"{value} outside {low}..{high}")
        return value

    return convert


an_id = bounded(1, MAX_ID)
a_page = bounded(1, MAX_PAGE)


class IdConverter(IntegerConverter):
    """<int:…> in every route: only numbers a BIGINT id can hold match; a larger one is a plain 404."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


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
            day = datetime.strptime(raw, pattern).date()
        except ValueError:
            continue
        if day.year in YEARS:
            return day
    errors[name] = "Ngày không hợp lệ, ví dụ 01/12/2026."
    return None
