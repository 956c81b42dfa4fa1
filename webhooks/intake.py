"""Store a verified event once (insert-or-skip on its dedupe key) and enqueue its handling job."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.inbound import enqueue_handle_event
from jobs.recovery import unhandled_events
from models import EventStatus, WebhookEvent, insert_ignore, utcnow
from tichdiem.db import autocommit
from zalo.events import ZaloEvent, dedupe_key

log = logging.getLogger(__name__)


def store_event(sessions: sessionmaker[Session], queue: Queue, event: ZaloEvent, body: dict[str, Any]) -> int | None:
    """Insert the event unless its key is known, then start its job. Returns the new row id, or None for a
    redelivery.

    One INSERT ... ON CONFLICT DO NOTHING that commits by itself (one round trip: the webhook's whole write),
    then the job in one round trip to Redis: the job never runs before its row is committed. Two concurrent
    deliveries of one event race safely: exactly one insert wins, the other sees no row returned. Redis down:
    the event stays "received" and the recovery job enqueues it.
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
    with autocommit(sessions) as connection:
        event_id = insert_ignore(connection, WebhookEvent, values, ["dedupe_key"])
    if event_id is not None:
        enqueue_waiting(queue, [event_id])  # Redis down: logged, and the recovery job enqueues it later
    return event_id


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
