"""Vietnamese phone numbers in one form: 84xxxxxxxxx (how Zalo shares them)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\D")
# Mobile numbers: 0 + 9 digits after the 2018 renumbering (03, 05, 07, 08, 09); landlines 02x + 8 digits.
_NATIONAL = re.compile(r"^0(?:[35789]\d{8}|2\d{9})$")


def normalize_phone(text: str) -> str | None:
    """'0912 345 678', '+84912345678', '84912345678' -> '84912345678'; anything else -> None."""
    digits = _DIGITS.sub("", text or "")
    if digits.startswith("84"):
        digits = "0" + digits[2:]
    elif digits.startswith("0084"):
        digits = "0" + digits[4:]
    if not _NATIONAL.match(digits):
        return None
    return "84" + digits[1:]


def display_phone(phone: str) -> str:
    """'84912345678' -> '0912 345 678'."""
    national = "0" + phone[2:] if phone.startswith("84") else phone
    return f"{national[:4]} {national[4:7]} {national[7:]}" if len(national) == 10 else national
