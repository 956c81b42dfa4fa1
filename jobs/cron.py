"""Every recurring job, in one place. Loaded by `tichdiem cron` (and ticked by the embedded worker).

RQ's cron runs in UTC: local times of the shop are converted here from TIMEZONE. Jobs that depend on
settings editable at run time (the daily hour) run hourly and decide themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rq import cron

from jobs import automations, broadcasts, followers, privacy, recovery, tags
from tichdiem.config import QUEUE_NAME, load_settings


def utc_cron(hour: int, minute: int, tz_name: str, day_of_month: str = "*") -> str:
    """A cron string in UTC for hour:minute local time (Asia/Ho_Chi_Minh 00:05 -> '5 17 * * *')."""
    from zoneinfo import ZoneInfo

    local = datetime(2026, 1, 15, hour, minute, tzinfo=ZoneInfo(tz_name))
    utc = local - (local.utcoffset() or timedelta(0))
    return f"{utc.minute} {utc.hour} {day_of_month} * *"


def register_all(tz_name: str) -> None:
    cron.register(automations.run_daily, QUEUE_NAME, cron="0 * * * *", name="daily-automations")
    cron.register(automations.expire_points, QUEUE_NAME, cron=utc_cron(0, 5, tz_name), name="expire-points")
    cron.register(automations.congratulate_tier_ups, QUEUE_NAME, interval=300, name="tier-up-congratulations")
    cron.register(automations.keep_token_fresh, QUEUE_NAME, interval=1800, name="token-keeper")
    cron.register(broadcasts.start_due_broadcasts, QUEUE_NAME, interval=60, name="start-broadcasts")
    # 15 s: a killed sender's part waits its liveness (20 s) plus at most one tick before it is restarted
    cron.register(broadcasts.recover_broadcasts, QUEUE_NAME, interval=15, name="recover-broadcasts")
    cron.register(recovery.recover, QUEUE_NAME, interval=30, name="recover")
    cron.register(followers.follower_sync_tick, QUEUE_NAME, interval=3600, name="follower-sync")
    cron.register(tags.sync_tier_tags, QUEUE_NAME, interval=600, name="tier-tags")
    cron.register(privacy.prune_personal_data, QUEUE_NAME, cron=utc_cron(3, 30, tz_name), name="prune-personal-data")


register_all(load_settings().timezone)
