"""Is the service doing its work? The checks behind /healthz and the owner's console banner.

Degraded when the database or the queue is down, when events or messages have waited longer than
WAIT_LIMIT (nobody is working them off), and with a Redis queue when no worker has sent a heartbeat for a
minute, RQ's scheduler (retries, delayed sends) is not running, or no `tichdiem cron` has been seen for two
minutes (without it nothing recovers by itself: jobs/recovery.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Worker, cron_scheduler_registry
from rq.registry import FailedJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from jobs.context import Services
from jobs.recovery import unattended_messages, unhandled_events
from models import DataRequest, EventStatus, OutboxMessage, OutboxStatus, RequestStatus, WebhookEvent, utcnow
from zalo.tokens import DatabaseTokenStore

log = logging.getLogger(__name__)

WAIT_LIMIT = timedelta(minutes=2)
HEARTBEAT_LIMIT = timedelta(minutes=1)
CRON_LIMIT = timedelta(minutes=2)
REFRESH_WARNING = timedelta(
    days=14
)  # the token keeper renews it daily: this close to its end, it failed  # RQ's cron beats at least every 60 s


@dataclass
class Health:
    database: dict[str, Any]
    queue: dict[str, Any]
    problems: list[str] = field(default_factory=list)  # codes; console.messages words them
    zalo: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def owner_notices(self) -> list[str]:
        """What the owner must act on that is no outage (so not in /healthz's status): overdue requests."""
        return ["requests_overdue"] if self.database.get("requests_overdue") else []


def check(services: Services, session: Session) -> Health:
    now = utcnow()
    database = _database(session, now)
    queue = _queue(services, now)
    zalo = _zalo(services, now) if database["ok"] else {}
    problems = [] if database["ok"] else ["database_down"]
    problems += [] if queue["ok"] else ["queue_down"]
    if database.get("events_overdue"):
        problems.append("events_waiting")
    if database.get("messages_overdue"):
        problems.append("messages_waiting")
    if queue.get("workers") == 0:
        problems.append("no_worker")
    if queue.get("scheduler") is False:
        problems.append("no_scheduler")
    if queue.get("cron") is False:
        problems.append("no_cron")
    if zalo.get("refresh_failed") or zalo.get("refresh_token_ending"):
        problems.append("zalo_token")
    return Health(database, queue, problems, zalo)


def _database(session: Session, now: datetime) -> dict[str, Any]:
    try:
        _ping(session)
        failed = session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.FAILED))
        waiting = session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.RECEIVED))
        # The same rows the recovery job picks up, a minute later: still there means nobody works them off.
        overdue_events = session.scalar(select(func.count()).where(*unhandled_events(now - WAIT_LIMIT)))
        overdue_messages = session.scalar(select(func.count()).where(*unattended_messages(now, now - WAIT_LIMIT)))
        unsent_rows = session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.status.in_([OutboxStatus.FAILED, OutboxStatus.UNKNOWN]))
            .group_by(OutboxMessage.status)
        ).all()
        unsent = {status: int(count) for status, count in unsent_rows}
        overdue_requests = session.scalar(
            select(func.count()).where(DataRequest.status == RequestStatus.OPEN, DataRequest.due_at < now)
        )
        return {
            "ok": True,
            "backend": session.get_bind().dialect.name,
            "events_failed": failed,
            "events_waiting": waiting,
            "events_overdue": overdue_events,
            "messages_overdue": overdue_messages,
            "messages_failed": unsent.get(OutboxStatus.FAILED, 0),
            "messages_unknown": unsent.get(OutboxStatus.UNKNOWN, 0),  # interrupted sends, never repeated
            "requests_overdue": overdue_requests,  # customers' erasure requests past their due date
        }
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("health: database check failed: %s", exc)
        return {"ok": False, "error": type(exc).__name__}


def _zalo(services: Services, now: datetime) -> dict[str, Any]:
    """The OA's token pair: a failed refresh, or a refresh token near its 3 months, means the OA will stop
    answering everyone until the owner grants it again."""
    tokens = services.zalo.tokens
    if not isinstance(tokens, DatabaseTokenStore):
        return {}
    try:
        status = tokens.status()
    except SQLAlchemyError as exc:
        log.error("health: token check failed: %s", exc)
        return {}
    if status is None:
        return {"connected": False}
    ends = status.refresh_token_expires_at()
    return {
        "connected": True,
        "access_token_expires_at": status.expires_at.isoformat() if status.expires_at else None,
        "refresh_token_expires_at": ends.isoformat() if ends else None,
        "refresh_token_ending": ends is not None and ends - now < REFRESH_WARNING,
        "refresh_failed": status.refresh_failed_at is not None,
        "refresh_error": status.refresh_error,
    }


def _ping(session: Session) -> None:
    """SELECT 1, once more on a fresh connection if the pooled one had died (the database restarted since):
    the pool drops a dead connection on its first error, and that alone is no outage."""
    try:
        session.execute(text("SELECT 1"))
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        session.rollback()
        session.execute(text("SELECT 1"))


def _queue(services: Services, now: datetime) -> dict[str, Any]:
    mode = "embedded" if services.settings.embedded_queue else "redis"
    try:
        services.redis.ping()
        state: dict[str, Any] = {
            "ok": True,
            "mode": mode,
            "queued": services.queue.count,
            "failed_jobs": FailedJobRegistry(queue=services.queue).count,
        }
        if mode == "redis":  # the embedded worker lives in this very process
            state["workers"] = _live_workers(services, now)
            state["scheduler"] = bool(services.redis.exists(RQScheduler.get_locking_key(services.queue.name)))
            state["cron"] = _cron_alive(services, now)
        return state
    except RedisError as exc:
        log.error("health: queue check failed: %s", exc)
        return {"ok": False, "mode": mode, "error": type(exc).__name__}


def _live_workers(services: Services, now: datetime) -> int:
    workers = Worker.all(queue=services.queue)
    return sum(1 for w in workers if w.last_heartbeat and _aware(w.last_heartbeat) > now - HEARTBEAT_LIMIT)


def _cron_alive(services: Services, now: datetime) -> bool:
    """A `tichdiem cron` heartbeat (at least once a minute) within CRON_LIMIT."""
    registry = cron_scheduler_registry.get_registry_key()
    return bool(services.redis.zcount(registry, (now - CRON_LIMIT).timestamp(), "+inf"))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
