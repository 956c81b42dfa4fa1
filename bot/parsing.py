"""Reading what people type: birthdays and bill amounts, Vietnamese style."""

from __future__ import annotations

import re

# Birthdays are read the same way in the chat and in member imports, so the rules live in the domain.
from loyalty.birthdays import NO_YEAR, BadInput, parse_birthday, show_birthday

__all__ = ["NO_YEAR", "BadInput", "parse_amount", "parse_birthday", "show_birthday"]


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
