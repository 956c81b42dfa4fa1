"""handle_event: the worker side of the event path (stored event -> bot -> outbox -> Zalo)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from rq import Queue
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError

from jobs.context import Services, current_services
from jobs.deferred import FAILED_JOB_TTL, RETRY, enqueue_all
from jobs.outbox import deliver_all, pending_ids_for_event, queue_and_claim_first, queue_messages, record_receipt
from jobs.profiles import fetch_profile, profile_due
from models import EventStatus, OutboxMessage, WebhookEvent, ZaloUser, lock_row_values, utcnow
from tichdiem.db import autocommit
from zalo.events import MessageReceipt, parse_event

log = logging.getLogger(__name__)
T = TypeVar("T")


def enqueue_handle_event(queue: Queue, event_id: int) -> None:
    """The webhook, once the event is stored, and recovery (`tichdiem events drain`): the job id makes a second
    enqueue of one event a no-op. One round trip to Redis."""
    enqueue_all(queue, [(handle_event, (event_id,), _job_options(event_id))])


def _job_options(event_id: int) -> dict[str, Any]:
    return {
        "job_id": f"evt-{event_id}",
        "retry": RETRY,
        "failure_ttl": FAILED_JOB_TTL,
        "description": f"handle webhook event {event_id}",
    }


def handle_event(event_id: int, known: Any = None) -> str:
    """Run the bot for one stored event (once), then deliver its replies (each at most once).

    `known`: the event's status and payload and its user's profile dates, when the caller read them already (a
    lane's claim returns them), saving the first read."""
    context = current_services()
    return once_more_if_disconnected(lambda: _handle(context, event_id, known))


def _handle(context: Services, event_id: int, known: Any = None) -> str:
    refresh_profile_if_stale(context, event_id, known)
    outcome, queued, claimed = process_event(context, event_id)
    # A job run again (a retry, a drain) finds the event processed: its replies not sent yet are looked up.
    pending = queued if queued is not None else pending_ids_for_event(context.sessions, event_id)
    deliver_all(context.sessions, context.zalo, pending, context.cards, context.proactive, claimed)
    return outcome


def once_more_if_disconnected(handle: Callable[[], T]) -> T:
    """A pooled connection the database server closed (a restart, a failover, connections cut) fails the first
    statement on it, and SQLAlchemy then throws the pool's old connections away. Every step of handling an
    event may run again (the bot's transaction rolled back or is found processed; a reply not sent is pending
    again, one sent is never sent twice), so running it again at once on a fresh connection is safe, and answers
    the customer now instead of after RQ's retry delay (5 s, 30 s, 2 min...)."""
    try:
        return handle()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("event: the database connection was lost; trying again on a fresh one")
        return handle()


def process_event(context: Services, event_id: int) -> tuple[str, list[int] | None, OutboxMessage | None]:
    """Route the event through the bot and store its replies, in one transaction with status=processed.

    Returns the status, the ids of the replies queued now (None when the event was handled before) and the first
    reply to the user, stored already claimed for the caller to send at once (`outbox.queue_and_claim_first`).

    The event row is locked first, so a second job for the same event (a drain racing a retry)
    waits and then sees `processed` instead of running the bot twice.
    """
    try:
        with context.sessions() as session, session.begin():
            row = lock_row_values(session, WebhookEvent, event_id, WebhookEvent.status, WebhookEvent.payload)
            if row is None:
                log.error("event %s not found", event_id)
                return "missing", [], None
            if row.status in (EventStatus.PROCESSED, EventStatus.IGNORED):
                return row.status, None, None
            event = parse_event(row.payload, oa_id=context.settings.zalo_oa_id)
            now = utcnow()
            if isinstance(event, MessageReceipt):  # about our own message: no user to touch, nothing to answer
                record_receipt(session, event, now)
                replies = []
            else:
                replies = context.bot.handle(session, event, now)
            to_chat = [m for r in replies if r.to_phone is None and r.to_user is None for m in r.to_outbox()]
            to_phones = [m for r in replies if r.to_phone is not None for m in r.to_outbox()]
            to_others: dict[str, list[Any]] = {}
            for r in replies:
                if r.to_user is not None and r.to_phone is None:
                    to_others.setdefault(r.to_user, []).extend(r.to_outbox())
            queued: list[int] = []
            claimed: OutboxMessage | None = None
            if to_chat and event.user_id:
                queued, claimed = queue_and_claim_first(
                    session, key=f"evt-{event_id}", user_id=event.user_id, messages=to_chat, event_id=event_id
                )
            if to_phones:
                queued += queue_messages(
                    session, key=f"evt-{event_id}-phone", user_id=None, messages=to_phones, event_id=event_id
                )
            for other, messages in to_others.items():
                key = f"evt-{event_id}-to-{other}"
                queued += queue_messages(session, key=key, user_id=other, messages=messages, event_id=event_id)
            session.execute(_processed_statement(), {"event_id": event_id, "now": now})
            return EventStatus.PROCESSED, queued, claimed
    except Exception:
        _record_failure(context, event_id, traceback.format_exc())
        raise


@lru_cache(maxsize=1)
def _processed_statement() -> Any:
    """The event's last write in the bot's transaction; a Core UPDATE built once (no ORM object to load and flush)."""
    return (
        update(WebhookEvent)
        .where(WebhookEvent.id == bindparam("event_id"))
        .values(
            status=EventStatus.PROCESSED,
            processed_at=bindparam("now", type_=WebhookEvent.processed_at.type),
            attempts=WebhookEvent.attempts + 1,
            error=None,
        )
    )


def refresh_profile_if_stale(context: Services, event_id: int, known: Any = None) -> None:
    """Fill the user's display name and avatar from Zalo once a week; never fails the event.

    Only for what a user did (a message, a follow, a tap): a receipt or a platform event names no one to
    look up, and its `user_id` could be the OA's own id if Zalo ever shaped one unexpectedly. The event and
    its user's profile dates are read together (or come with a lane's claim, `known`): nearly always the
    profile is fresh and that one read is all."""
    row = known if known is not None else _event_and_profile(context, event_id)
    if row is None or row.status == EventStatus.PROCESSED:
        return
    now = utcnow()
    if not profile_due(row.profile_fetched_at, row.profile_tried_at, now):  # no user row yet: due
        return
    event = parse_event(row.payload, oa_id=context.settings.zalo_oa_id)
    if event.user_id and event.is_interaction and event.user_id != context.settings.zalo_oa_id:
        fetch_profile(context.sessions, context.zalo, event.user_id, now)


def _event_and_profile(context: Services, event_id: int) -> Any:
    stmt = (
        select(WebhookEvent.status, WebhookEvent.payload, ZaloUser.profile_fetched_at, ZaloUser.profile_tried_at)
        .outerjoin(ZaloUser, ZaloUser.user_id == WebhookEvent.zalo_user_id)
        .where(WebhookEvent.id == event_id)
    )
    with autocommit(context.sessions) as connection:
        return connection.execute(stmt).first()


def _record_failure(context: Services, event_id: int, error: str) -> None:
    log.error("event %s failed: %s", event_id, error.strip().splitlines()[-1])
    with context.sessions() as session, session.begin():
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(status=EventStatus.FAILED, error=error[-8000:], attempts=WebhookEvent.attempts + 1)
        )
