"""Birthdays as people type them: "12/05/1990", "12-5-1990", "12.05" (no year), shown back the same way."""

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
