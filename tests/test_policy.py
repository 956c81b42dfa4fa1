"""Zalo's sending rules as a table: the 7-day window, templates, and the night ban for promotions."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from zalo.policy import Route, decide, is_night, next_morning

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def at(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "last_days_ago", "promotional", "template", "route"),
    [
        (at(10), 1, False, False, Route.CS),
        (at(10), 7, False, False, Route.CS),  # exactly 7 days: still inside
        (at(10), 8, False, False, Route.SKIP),
        (at(10), 8, False, True, Route.TEMPLATE),
        (at(10), None, False, True, Route.TEMPLATE),  # never interacted
        (at(10), None, False, False, Route.SKIP),
        (at(23), 1, True, False, Route.DEFER),  # promotion at night
        (at(5, 59), 1, True, True, Route.DEFER),
        (at(6), 1, True, False, Route.CS),  # 06:00 is morning
        (at(21, 59), 1, True, False, Route.CS),
        (at(23), 1, False, False, Route.CS),  # care messages go out at night
    ],
)
def test_routes(now: datetime, last_days_ago: int | None, promotional: bool, template: bool, route: Route) -> None:
    last = now - timedelta(days=last_days_ago) if last_days_ago is not None else None
    assert (
        decide(last_interaction=last, now=now, tz=TZ, promotional=promotional, template_configured=template).route
        == route
    )


@pytest.mark.parametrize(("now", "morning"), [(at(23), at(6, day=24)), (at(2), at(6)), (at(6), at(6, day=24))])
def test_next_morning_is_06_local(now: datetime, morning: datetime) -> None:
    assert next_morning(now, TZ) == morning
    assert decide(last_interaction=now, now=now, tz=TZ, promotional=True, template_configured=False).not_before in (
        morning,
        None,
    )


def test_night_uses_the_shop_timezone() -> None:
    assert is_night(datetime(2026, 11, 23, 15, 30, tzinfo=UTC), TZ)  # 22:30 in Vietnam, 15:30 UTC
    assert not is_night(datetime(2026, 11, 23, 23, 30, tzinfo=UTC), TZ)  # 06:30 in Vietnam
