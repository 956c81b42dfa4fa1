"""Reading what people type: birthdays and bill amounts, Vietnamese style."""

from __future__ import annotations

import re
from datetime import date

NO_YEAR = 1904  # a leap year, so 29/02 without a year is a valid date; shown as "29/02"
_DATE = re.compile(r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})(?:\s*[/.\-]\s*(\d{4}))?\s*$")


class BadInput(ValueError):
    """What the person typed cannot be read; the message says how to type it."""


def parse_birthday(text: str, today: date) -> date:
    """ "12/05/1990", "12-5-1990", "12.05" -> a date (year NO_YEAR when not given)."""
    match = _DATE.match(text)
    if match is None:
        raise BadInput("format")
    day, month = int(match[1]), int(match[2])
    year = int(match[3]) if match[3] else NO_YEAR
    try:
        born = date(year, month, day)
    except ValueError as exc:
        raise BadInput("no_such_day") from exc
    if match[3] and not 1900 <= year <= today.year or (match[3] and born > today):
        raise BadInput("year")
    return born


def show_birthday(born: date) -> str:
    return born.strftime("%d/%m") if born.year == NO_YEAR else born.strftime("%d/%m/%Y")


_AMOUNT = re.compile(
    r"^\s*(\d{1,3}(?:[.,\s]\d{3})+|\d+)\s*(k|nghìn|ngàn|tr|triệu)?\s*(đ|d|vnd|vnđ)?\s*$", re.IGNORECASE
)


def parse_amount(text: str) -> int:
    """ "250000", "250.000", "250,000đ", "250k", "1,5tr" is not accepted (ambiguous) -> 250000."""
    match = _AMOUNT.match(text or "")
    if match is None:
        raise BadInput("amount")
    value = int(re.sub(r"\D", "", match[1]))
    unit = (match[2] or "").lower()
    value *= 1_000 if unit in ("k", "nghìn", "ngàn") else 1_000_000 if unit in ("tr", "triệu") else 1
    if value <= 0:
        raise BadInput("amount")
    return value
