"""How numbers and dates read in Vietnamese: 1.250 điểm, 250.000đ, 12/11/2026."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def points(value: int) -> str:
    """1250 -> "1.250" (Vietnamese thousands separator)."""
    return f"{value:,}".replace(",", ".")


def signed_points(value: int) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "") + points(abs(value))


def vnd(amount: int) -> str:
    """250000 -> "250.000đ"."""
    return f"{points(amount)}đ"


def day(value: date | datetime, tz: ZoneInfo | None = None) -> str:
    """dd/mm/yyyy in the shop's timezone."""
    return _local(value, tz).strftime("%d/%m/%Y")


def short_day(value: date | datetime, tz: ZoneInfo | None = None) -> str:
    """dd/mm, for history lines."""
    return _local(value, tz).strftime("%d/%m")


def _local(value: date | datetime, tz: ZoneInfo | None) -> date | datetime:
    if isinstance(value, datetime) and tz is not None:
        return value.astimezone(tz)
    return value
