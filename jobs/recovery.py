"""Cron tick, every minute: whatever a lost queue or a dead worker left behind is picked up again, no human.

- events stored but not handled for a minute (Redis restarted empty, a job lost) are enqueued again, unless
  their job (`evt-<id>`) is still in RQ;
- outbox rows pending for a minute whose delivery job is gone are enqueued again, unless they are waiting
  for a retry RQ scheduled (backoff up to 30 minutes) or for the morning;
- sends a dead worker left "sending" become "unknown" (never repeated).

Re-running any of it is harmless: events are handled once (row lock, status), rows are sent once (claim).
`tichdiem events drain` and `outbox drain` remain as tools, not as the way to recover.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from jobs.context import current_services
from jobs.inbound import enqueue_handle_event
from jobs.outbox import enqueue_delivery, mark_interrupted
from models import EventStatus, OutboxMessage, OutboxStatus, WebhookEvent, utcnow

log = logging.getLogger(__name__)

WAITING = timedelta(minutes=1)  # longer than any healthy path takes from commit to pick-up
RETRY_WAIT = timedelta(minutes=35)  # the longest RQ backoff (30 min) and a margin: a scheduled retry is left alone
LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
BATCH = 100
LIMIT = 10_000


def recover() -> dict[str, int]:
    services = current_services()
    now = utcnow()
    with services.sessions() as session:
        interrupted = mark_interrupted(session, now)
        session.commit()
        event_ids = waiting_event_ids(session, now)
        outbox_ids = waiting_outbox_ids(session, now)
    queue = services.queue
    events = [i for i in event_ids if not _job_alive(queue, f"evt-{i}")]
    for event_id in events:
        enqueue_handle_event(queue, event_id)
    for start in range(0, len(outbox_ids), BATCH):
        enqueue_delivery(queue, outbox_ids[start : start + BATCH])
    if events or outbox_ids or interrupted:
        log.warning(
            "recovery: %s event(s) and %s message(s) enqueued again, %s interrupted send(s) marked unknown",
            len(events),
            len(outbox_ids),
            interrupted,
        )
    return {"events": len(events), "messages": len(outbox_ids), "interrupted": interrupted}


def waiting_event_ids(session: Session, now: datetime) -> list[int]:
    stmt = select(WebhookEvent.id).where(*unhandled_events(now - WAITING)).order_by(WebhookEvent.id).limit(LIMIT)
    return list(session.scalars(stmt))


def waiting_outbox_ids(session: Session, now: datetime) -> list[int]:
    stmt = select(OutboxMessage.id).where(*unattended_messages(now, now - WAITING)).order_by(OutboxMessage.id)
    return list(session.scalars(stmt.limit(LIMIT)))


def unhandled_events(before: datetime) -> list[ColumnElement[bool]]:
    """Events stored before `before` and still not handled (also what health reports as overdue)."""
    return [WebhookEvent.status == EventStatus.RECEIVED, WebhookEvent.received_at < before]


def unattended_messages(now: datetime, before: datetime) -> list[ColumnElement[bool]]:
    """Pending rows written before `before` that nobody is delivering: due now, not a retry RQ still holds for
    its backoff, not a broadcast's (its senders own those: recover_broadcasts)."""
    return [
        OutboxMessage.status == OutboxStatus.PENDING,
        OutboxMessage.created_at < before,
        or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
        or_(OutboxMessage.claimed_at.is_(None), OutboxMessage.claimed_at < now - RETRY_WAIT),
        OutboxMessage.broadcast_id.is_(None),
    ]


def _job_alive(queue: Queue, job_id: str) -> bool:
    try:
        status = Job.fetch(job_id, connection=queue.connection).get_status()
    except NoSuchJobError:
        return False
    return status in LIVE_STATES
