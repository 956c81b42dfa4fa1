"""Which way a proactive message may go, by Zalo's rules (reference §2.5, §4).

- Consultation (cs) messages reach only users who interacted in the last 7 days (else -230).
- Outside the window, only an approved template message (ZBS by UID) can reach them, if the shop has one.
- Promotional content is refused 22:00-06:00 local time (-234): it waits until 06:00.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

CS_WINDOW = timedelta(days=7)
NIGHT_STARTS, NIGHT_ENDS = time(22, 0), time(6, 0)


class Route(enum.StrEnum):
    CS = "cs"
    TEMPLATE = "template"
    SKIP = "skip"
    DEFER = "defer"


@dataclass(frozen=True)
class Decision:
    route: Route
    reason: str = ""
    not_before: datetime | None = None  # for DEFER: when to try again


def decide(
    *, last_interaction: datetime | None, now: datetime, tz: ZoneInfo, promotional: bool, template_configured: bool
) -> Decision:
    if promotional and is_night(now, tz):
        return Decision(Route.DEFER, "night: promotions wait until 06:00", next_morning(now, tz))
    if last_interaction is not None and now - last_interaction <= CS_WINDOW:
        return Decision(Route.CS)
    if template_configured:
        return Decision(Route.TEMPLATE, "outside the 7-day window: template message")
    return Decision(Route.SKIP, "outside the 7-day window and no template configured")


def is_night(now: datetime, tz: ZoneInfo) -> bool:
    local = now.astimezone(tz).time()
    return local >= NIGHT_STARTS or local < NIGHT_ENDS


def next_morning(now: datetime, tz: ZoneInfo) -> datetime:
    """The next 06:00 local time (today's if it is still before 06:00)."""
    local = now.astimezone(tz)
    morning = local.replace(hour=NIGHT_ENDS.hour, minute=0, second=0, microsecond=0)
    if local.time() >= NIGHT_ENDS:
        morning += timedelta(days=1)
    return morning
