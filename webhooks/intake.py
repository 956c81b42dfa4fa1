"""Store a verified event once (insert-or-skip on its dedupe key): the workers' lanes take it from there."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs import lane
from jobs.inbound import enqueue_handle_event
from jobs.recovery import unhandled_events
from models import EventStatus, WebhookEvent, insert_ignore, insert_ignore_statement, utcnow
from tichdiem.db import autocommit, driver_scalar
from zalo.events import ZaloEvent, dedupe_key

log = logging.getLogger(__name__)


def store_event(sessions: sessionmaker[Session], event: ZaloEvent, body: dict[str, Any]) -> int | None:
    """Insert the event unless its key is known. Returns the new row id, or None for a redelivery.

    One INSERT ... ON CONFLICT DO NOTHING that commits by itself and, on PostgreSQL, wakes the workers' lanes in
    the same statement (`jobs.lane`): one round trip is the webhook's whole write, and no worker sees the event
    before its row is committed. Two concurrent deliveries of one event race safely: exactly one insert wins, the
    other sees no row returned. Redis plays no part: a stored event waits in the table for a lane.
    """
    values = {
        "dedupe_key": dedupe_key(event),
        "event_name": event.event_name,
        "zalo_user_id": event.user_id,
        "payload": body,
        "status": EventStatus.RECEIVED,
        "attempts": 0,
        "received_at": utcnow(),
    }
    engine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        return driver_scalar(engine, _store_and_wake(tuple(sorted(values))), values)
    with autocommit(sessions) as connection:
        return insert_ignore(connection, WebhookEvent, values, ["dedupe_key"])  # SQLite: lanes look every second


@lru_cache(maxsize=1)
def _store_and_wake(columns: tuple[str, ...]) -> Any:
    """The insert-or-skip, and pg_notify for the row it returns (none for a redelivery). Built once."""
    stored = insert_ignore_statement("postgresql", WebhookEvent, columns, ("dedupe_key",)).cte("stored")
    return select(stored.c.id, lane.notify_statement()).select_from(stored)


def enqueue_waiting(queue: Queue, event_ids: list[int]) -> int:
    """Enqueue stored events (a new one, or recovery's unhandled ones); returns how many were enqueued. Redis
    down: each is logged and stays "received" for the recovery job."""
    enqueued = 0
    for event_id in event_ids:
        try:
            enqueue_handle_event(queue, event_id)
            enqueued += 1
        except RedisError:
            log.exception("events: %s not enqueued (queue down)", event_id)
    return enqueued


def unhandled_event_ids(session: Session, limit: int = 1000) -> list[int]:
    """Events stored but never handled (e.g. Redis was down when they arrived), for `tichdiem events drain`."""
    stmt = select(WebhookEvent.id).where(*unhandled_events(utcnow())).order_by(WebhookEvent.id).limit(limit)
    return list(session.scalars(stmt))
