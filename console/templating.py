"""What every console page can use without each view passing it: number and time filters, csrf_field().

`{{ n|points }}` 1.250 · `{{ amount|vnd }}` 250.000đ · `{{ when|day }}` 12/11/2026 · `{{ when|local }}`
14:05 12/11/2026 (in the shop's timezone; `|local('%H:%M %d/%m')` for another shape) · `{{ csrf_field() }}`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from console.auth import load_staff
from console.describe import actor_label, detail_text
from console.menu import menu_for
from console.messages import HEALTH
from jobs.health import check
from loyalty import format as fmt
from models import Role
from tichdiem.extensions import get_session, get_settings, services

LOCAL_TIME = "%H:%M %d/%m/%Y"


def register(app: Flask) -> None:
    app.add_template_filter(fmt.points, "points")
    app.add_template_filter(fmt.signed_points, "signed_points")
    app.add_template_filter(fmt.vnd, "vnd")
    app.add_template_filter(_day, "day")
    app.add_template_filter(_local, "local")
    app.add_template_global(csrf_field)
    app.add_template_global(health_problems)
    app.add_template_global(actor_label)
    app.add_template_global(detail_text)
    app.add_template_global(lambda: menu_for(load_staff()), "console_menu")
    app.context_processor(_shop_context)


def csrf_field() -> Markup:
    """The hidden CSRF input every console form carries."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(generate_csrf()))


def health_problems() -> list[str]:
    """For the owner, on every page: what /healthz reports as degraded, in words (nobody else sees it)."""
    staff = load_staff()
    if staff is None or staff.role != Role.OWNER:
        return []
    health = check(services(), get_session())
    return [HEALTH[p] for p in [*health.problems, *health.owner_notices]]


def _shop_context() -> dict[str, Any]:
    return {"fmt": fmt, "tz": _tz()}


def _day(value: date | datetime | None) -> str:
    return fmt.day(value, _tz()) if value is not None else ""


def _local(value: datetime | None, pattern: str = LOCAL_TIME) -> str:
    return value.astimezone(_tz()).strftime(pattern) if value is not None else ""


def _tz() -> ZoneInfo:
    return get_settings().tz
