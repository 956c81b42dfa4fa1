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
FREE_WINDOW = timedelta(hours=48)  # a consultation message this soon after the user's last one is free
NIGHT_STARTS, NIGHT_ENDS = time(22, 0), time(6, 0)


class Channel(enum.StrEnum):
    """How a message the shop starts would reach one person, and what it costs (reference §2.5, §4)."""

    FREE = "free"  # consultation message within 48 hours of the user's last interaction
    QUOTA = "quota"  # consultation message 48 hours-7 days after it: drawn from the OA package's quota
    TEMPLATE = "template"  # outside 7 days, or no Zalo account: an approved ZBS template, billed per message
    NONE = "none"  # outside 7 days and no template: not sent


def channel_of(last_interaction: datetime | None, now: datetime, template: bool) -> Channel:
    if last_interaction is not None and now - last_interaction <= FREE_WINDOW:
        return Channel.FREE
    if last_interaction is not None and now - last_interaction <= CS_WINDOW:
        return Channel.QUOTA
    return Channel.TEMPLATE if template else Channel.NONE


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
