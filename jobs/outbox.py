"""The outbox: messages are rows first, Zalo calls second, so a retried job never re-sends a delivered one.

A row is claimed (pending -> sending) in its own short transaction before the HTTP call and marked sent
right after it; an event's first reply is stored already claimed, for the worker that sends it right after
its commit (`queue_and_claim_first`). No database lock is held during the call. A row a dead worker left
"sending" may or may not have reached Zalo (Zalo has no idempotency key); it becomes "unknown" and is never
sent again: at most once, and every such case is counted in /healthz.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from rq import Queue
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jobs.context import current_services
from jobs.deferred import FAILED_JOB_TTL, RETRY, enqueue_after_commit
from jobs.proactive import Hold, SendFacts, Skip, send_facts_columns
from models import OutboxMessage, OutboxStatus, insert_ignore, rows_updated, utcnow
from tichdiem.db import autocommit
from zalo.client import ZaloClient
from zalo.errors import ZaloError, ZaloUncertain
from zalo.events import MessageReceipt

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=2)  # well above the client's connect + read timeout
MAX_SEND_ATTEMPTS = 6  # the first try plus the job's five retries
MARK_SENT_ATTEMPTS, MARK_SENT_PAUSE = 4, 0.5  # seconds, growing: a PostgreSQL restart takes a few


class CardSender(Protocol):
    def send(self, user_id: str, payload: dict[str, Any]) -> str: ...


class RowSender(Protocol):
    def send(self, row: OutboxMessage, facts: SendFacts | None = None) -> str: ...


OutboxItem = dict[str, Any] | tuple[str, dict[str, Any]]  # a plain message, or (kind, payload)


def queue_messages(
    session: Session, *, key: str, user_id: str | None, messages: Sequence[OutboxItem], event_id: int | None = None
) -> list[int]:
    """Add messages to the outbox as `key:0`, `key:1`, ...; keys already present are left alone. Returns ids."""
    return _queue(session, key=key, user_id=user_id, messages=messages, event_id=event_id)[0]


def queue_and_claim_first(
    session: Session, *, key: str, user_id: str, messages: Sequence[OutboxItem], event_id: int
) -> tuple[list[int], OutboxMessage | None]:
    """`queue_messages`, the first message inserted already claimed ("sending", attempt 1) for the caller, who
    sends it right after the commit: the claim's own round trip and commit saved (issue 16: ~10% of a reply's
    CPU). Returns the ids and that claimed row (None if its key existed already: someone else's to send).

    Only the first: if the caller dies before sending, a claimed row becomes "unknown" (never sent twice), while
    the others stay pending and recovery sends them."""
    return _queue(session, key=key, user_id=user_id, messages=messages, event_id=event_id, claim_first=True)


def _queue(
    session: Session,
    *,
    key: str,
    user_id: str | None,
    messages: Sequence[OutboxItem],
    event_id: int | None,
    claim_first: bool = False,
) -> tuple[list[int], OutboxMessage | None]:
    ids: list[int] = []
    claimed = None
    now = utcnow()
    for index, item in enumerate(messages):
        kind, message = item if isinstance(item, tuple) else ("message", item)
        values: dict[str, Any] = {
            "key": f"{key}:{index}",
            "zalo_user_id": user_id,
            "kind": kind,
            "message": message,
            "event_id": event_id,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "created_at": now,
        }
        if claim_first and index == 0:
            values.update(status=OutboxStatus.SENDING, attempts=1, claimed_at=now)
        new_id = insert_ignore(session, OutboxMessage, values, ["key"])
        if new_id is None:
            ids.append(session.scalars(select(OutboxMessage.id).where(OutboxMessage.key == values["key"])).one())
            continue
        ids.append(new_id)
        if values["status"] == OutboxStatus.SENDING:
            claimed = OutboxMessage(id=new_id, **values)  # detached, read-only for the sender, as `_claim` returns
    return ids, claimed


def pending_ids_for_event(sessions: sessionmaker[Session], event_id: int) -> list[int]:
    with sessions() as session:
        stmt = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.event_id == event_id,
                OutboxMessage.status != OutboxStatus.SENT,
                OutboxMessage.status != OutboxStatus.FAILED,
            )
            .order_by(OutboxMessage.id)
        )
        return list(session.scalars(stmt))


def deliver_all(
    sessions: sessionmaker[Session],
    zalo: ZaloClient,
    outbox_ids: Sequence[int],
    cards: CardSender | None = None,
    proactive: RowSender | None = None,
    claimed: OutboxMessage | None = None,
) -> None:
    """Deliver in order; a retryable failure stops here and raises so the job retries the rest later.
    `claimed`: one of them, claimed already by the caller (`queue_and_claim_first`)."""
    for outbox_id in outbox_ids:
        mine = claimed if claimed is not None and claimed.id == outbox_id else None
        deliver_one(sessions, zalo, outbox_id, cards, proactive, claimed=mine)


def deliver_one(
    sessions: sessionmaker[Session],
    zalo: ZaloClient,
    outbox_id: int,
    cards: CardSender | None = None,
    proactive: RowSender | None = None,
    *,
    claimed: OutboxMessage | None = None,
    carry: Marks | None = None,
) -> str:
    """Send one outbox message at most once. Returns its final or current status. `claimed`: the row, if the
    caller claimed it already. `carry`: a sender's "sent" marks not written yet; this claim writes them in its own
    round trip, and this message's mark is left in it for the next claim (the caller ends with `write_marks`)."""
    facts = None
    if claimed is not None:
        message: OutboxMessage | None = claimed
    else:
        message, facts = _claim(sessions, outbox_id, carry)
    if message is None:
        with sessions() as session:
            row = session.get(OutboxMessage, outbox_id)
            return row.status if row else "missing"
    try:
        if message.kind == "proactive":  # may go by phone, without a Zalo user
            if proactive is None:
                raise RuntimeError("a proactive message needs a ProactiveSender")
            zalo_message_id = proactive.send(message, facts)
        elif message.zalo_user_id is None:
            raise Skip("no Zalo user to send it to", OutboxStatus.FAILED)
        elif message.kind in ("member_card", "stamp_card"):
            if cards is None:
                raise RuntimeError("a card needs a CardSender")
            zalo_message_id = cards.send(message.zalo_user_id, message.message)
        else:
            zalo_message_id = zalo.send_message(message.zalo_user_id, message.message)
    except ZaloError as exc:
        return _record_failure(sessions, message, exc)
    except SQLAlchemyError:
        # The database went away before the message went out: every sender reads what it needs (the token, the
        # card, the template) first and calls Zalo last, and a failed call is a ZaloError. Nothing reached
        # Zalo, so the row goes back to pending for the job's retry instead of staying "sending" (which
        # recovery would have to call unknown, and the customer would never get an answer).
        release = lambda: _release(sessions, message, "database lost before sending", None)  # noqa: E731
        _with_fresh_connections(release, f"putting {outbox_id} back to pending")
        raise
    except Hold as hold:
        return _release(sessions, message, hold.reason, hold.not_before)
    except Skip as skip:
        with sessions() as session, session.begin():
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id)
                .values(status=skip.status, last_error=skip.reason)
            )
        return skip.status
    if carry is not None:
        carry.append((outbox_id, zalo_message_id, utcnow()))
    else:
        _mark_sent(sessions, outbox_id, zalo_message_id)
    return OutboxStatus.SENT


Marks = list[tuple[int, str, datetime]]  # (outbox id, Zalo's message id, sent at) of messages sent, not yet marked


def write_marks(sessions: sessionmaker[Session], carry: Marks) -> None:
    """Write the "sent" marks a sender still carries (its last message's, or those its failed claim did not)."""
    while carry:
        outbox_id, zalo_message_id, sent_at = carry[0]
        _mark_sent(sessions, outbox_id, zalo_message_id, sent_at)
        carry.pop(0)


def _mark_sent(
    sessions: sessionmaker[Session], outbox_id: int, zalo_message_id: str, sent_at: datetime | None = None
) -> None:
    """Record a delivered message. The database may drop the connection right now (a failover, a restart):
    Zalo already has the message, so try again on a fresh connection rather than leave it "sending"."""
    values = {
        "status": OutboxStatus.SENT,
        "zalo_message_id": zalo_message_id,
        "sent_at": sent_at or utcnow(),
        "last_error": None,
    }

    def mark() -> None:
        with autocommit(sessions) as connection:
            connection.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(**values))

    # Still failing after the last try: left "sending", recovery marks it unknown (delivered, not recorded).
    _with_fresh_connections(mark, f"recording {outbox_id} as sent")


def _with_fresh_connections(write: Callable[[], object], what: str = "") -> None:
    """Run a write that must not be lost to a dropped connection, trying again on fresh ones: a pooled
    connection the server closed fails once and is replaced, and a PostgreSQL restart takes a few seconds."""
    for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
        try:
            write()
            return
        except OperationalError:
            if attempt == MARK_SENT_ATTEMPTS:
                raise
            log.warning("outbox: database lost while %s; trying again", what or "writing")
            time.sleep(MARK_SENT_PAUSE * attempt)


def _release(sessions: sessionmaker[Session], message: OutboxMessage, reason: str, not_before: datetime | None) -> str:
    """Back to pending without counting an attempt (paused, or waiting for the morning)."""
    with sessions() as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(
                status=OutboxStatus.PENDING,
                attempts=OutboxMessage.attempts - 1,
                not_before=not_before,
                last_error=reason,
            )
        )
    return OutboxStatus.PENDING


def _claim(
    sessions: sessionmaker[Session], outbox_id: int, carry: Marks | None = None
) -> tuple[OutboxMessage | None, SendFacts | None]:
    """pending -> sending in one statement that commits by itself; the claimed row, or None if it was not
    pending (or not due yet), and what a proactive send checks (`SendFacts`), read by the same statement: a
    broadcast sends thousands of rows, and that read was a round trip of its own per message. On PostgreSQL the
    same statement also writes the "sent" mark the sender carries from its previous message (`carry`).

    Only pending rows: a row left "sending" by a dead worker may have reached Zalo, so it is never sent
    again (mark_interrupted turns it into "unknown"). No message goes out twice."""
    params: dict[str, Any] = {"outbox_id": outbox_id, "now": utcnow()}
    with autocommit(sessions) as connection:
        if carry and connection.dialect.name == "postgresql" and len(carry) == 1:
            (sent_id, sent_message_id, sent_at), statement = carry[0], _claim_and_mark_statement()
            params.update(sent_id=sent_id, sent_message_id=sent_message_id, mark_sent_at=sent_at)
            row = connection.execute(statement, params).first()
            carry.clear()  # written with the claim, in its transaction
        else:
            row = connection.execute(_claim_statement(), params).first()
    if carry:
        write_marks(sessions, carry)  # SQLite (no UPDATE in a WITH), or several carried: one statement each
    if row is None:
        return None, None
    values = row._mapping
    # A detached copy of the claimed row (read-only for the sender): a Core statement and no Session per message,
    # which a broadcast of thousands felt (bench.broadcast).
    message = OutboxMessage(**{column.key: values[column.key] for column in _OUTBOX_COLUMNS})
    return message, SendFacts.of(row)


_OUTBOX_COLUMNS = tuple(OutboxMessage.__table__.c)


@lru_cache(maxsize=1)
def _claim_statement() -> Any:
    """Built once, executed with parameters."""
    now = bindparam("now", type_=OutboxMessage.claimed_at.type)
    claimable = OutboxMessage.status == OutboxStatus.PENDING
    due = or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now)
    return (
        update(OutboxMessage)
        .where(OutboxMessage.id == bindparam("outbox_id"), claimable, due)
        .values(status=OutboxStatus.SENDING, claimed_at=now, attempts=OutboxMessage.attempts + 1)
        .returning(
            *_OUTBOX_COLUMNS,
            *send_facts_columns(),
        )
    )


@lru_cache(maxsize=1)
def _claim_and_mark_statement() -> Any:
    """The claim, with the previous message's "sent" mark in a WITH (PostgreSQL runs an UPDATE in a WITH whether
    or not the statement reads it): a broadcast sender's second round trip per message saved (bench.broadcast)."""
    sent = (
        update(OutboxMessage)
        .where(OutboxMessage.id == bindparam("sent_id"))
        .values(
            status=OutboxStatus.SENT,
            zalo_message_id=bindparam("sent_message_id", type_=OutboxMessage.zalo_message_id.type),
            sent_at=bindparam("mark_sent_at", type_=OutboxMessage.sent_at.type),
            last_error=None,
        )
        .cte("sent")
    )
    return _claim_statement().add_cte(sent)


def _record_failure(sessions: sessionmaker[Session], message: OutboxMessage, exc: ZaloError) -> str:
    if isinstance(exc, ZaloUncertain):
        # The request went out; Zalo may have delivered it. Like a dead worker's send: never again.
        with sessions() as session, session.begin():
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id)
                .values(status=OutboxStatus.UNKNOWN, last_error=f"uncertain, not sent again: {exc}"[:2000])
            )
        log.warning("outbox: %s uncertain (%s), marked unknown", message.key, exc)
        return OutboxStatus.UNKNOWN
    will_retry = exc.retryable and message.attempts < MAX_SEND_ATTEMPTS
    status = OutboxStatus.PENDING if will_retry else OutboxStatus.FAILED
    with sessions() as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status=status, last_error=str(exc)[:2000])
        )
    if will_retry:
        log.warning("outbox: %s failed (attempt %s), will retry: %s", message.key, message.attempts, exc)
        raise exc
    log.error("outbox: %s failed for good after %s attempt(s): %s", message.key, message.attempts, exc)
    if exc.retryable:
        raise exc  # attempts used up: let RQ record the job as failed too
    return OutboxStatus.FAILED


def deliver_messages(outbox_ids: list[int]) -> None:
    """RQ job: deliver outbox messages written by a web request or another job (after its commit)."""
    context = current_services()
    deliver_all(context.sessions, context.zalo, outbox_ids, context.cards, context.proactive)
    with context.sessions() as session:  # held for the night ban: try again in the morning
        waiting = session.execute(
            select(OutboxMessage.id, OutboxMessage.not_before).where(
                OutboxMessage.id.in_(outbox_ids),
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.not_before.is_not(None),
            )
        ).all()
    for not_before in sorted({nb for _, nb in waiting if nb is not None}):
        context.queue.enqueue_at(
            not_before, deliver_messages, [i for i, nb in waiting if nb == not_before], retry=RETRY
        )


def deliver_after_commit(session: Session, outbox_ids: Sequence[int]) -> None:
    """Their delivery job starts once the transaction that wrote the rows commits."""
    if outbox_ids:
        enqueue_after_commit(session, deliver_messages, list(outbox_ids), **_delivery_options(outbox_ids))


def enqueue_delivery(queue: Queue, outbox_ids: Sequence[int]) -> None:
    """For recovery (`tichdiem outbox drain`): rows already committed, their job lost."""
    if outbox_ids:
        queue.enqueue(deliver_messages, list(outbox_ids), **_delivery_options(outbox_ids))


def _delivery_options(outbox_ids: Sequence[int]) -> dict[str, Any]:
    return {"retry": RETRY, "failure_ttl": FAILED_JOB_TTL, "description": f"deliver outbox {list(outbox_ids)[:5]}"}


def stuck_message_ids(session: Session, older_than: timedelta = timedelta(minutes=1), limit: int = 10_000) -> list[int]:
    """Pending rows nobody is delivering (their job was lost), oldest first."""
    stmt = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.created_at < utcnow() - older_than)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def mark_interrupted(session: Session, now: datetime | None = None) -> int:
    """Rows a dead worker left "sending" (older than STALE_CLAIM): Zalo may have them, so they become
    "unknown" and are reported, never re-sent. Called by the recovery cron and `tichdiem outbox drain`."""
    now = now or utcnow()
    return rows_updated(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_at < now - STALE_CLAIM)
        .values(
            status=OutboxStatus.UNKNOWN,
            last_error="interrupted mid-send (the worker died or lost the database); not sent again",
        ),
    )


def record_receipt(session: Session, receipt: MessageReceipt, now: datetime) -> int:
    """Zalo's delivered/seen report, on the rows whose message id it names; the first report of each wins.

    Matched by Zalo's message id only (unique per message), so a receipt that names no user (a template
    delivery to a phone, an OA id not configured) still lands. Seen implies delivered."""
    ids = [i for i in receipt.message_ids if i][:100]
    if not ids:
        return 0
    at = min(receipt.occurred_at or now, now)
    columns = [OutboxMessage.delivered_at] + ([OutboxMessage.seen_at] if receipt.seen else [])
    updated = 0
    for column in columns:
        stmt = (
            update(OutboxMessage).where(OutboxMessage.zalo_message_id.in_(ids), column.is_(None)).values({column: at})
        )
        updated += rows_updated(session, stmt)
    return updated
