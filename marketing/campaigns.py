"""Broadcast campaigns as the console and the CLI manage them: create, pause, resume, cancel, progress.

Plain functions that take a Session and never commit; the sending itself is RQ's (jobs/broadcasts.py),
started after the caller's commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jobs.broadcasts import senders_after_commit
from loyalty.errors import InvalidSettings
from loyalty.placeholders import ALLOWED, unknown
from loyalty.segments import Segment
from models import Broadcast, BroadcastStatus, OutboxMessage, OutboxStatus, rows_updated


def create_broadcast(
    session: Session,
    *,
    name: str,
    text: str,
    segment: Segment,
    send_at: datetime | None,
    now: datetime,
    promotional: bool = True,
    buttons: list[dict[str, str]] | None = None,
    created_by: str | None = None,
) -> Broadcast:
    if not text.strip() or len(text) > 2000:
        raise InvalidSettings("the message needs 1-2000 characters")
    if segment.followers and (odd := unknown(text, ALLOWED["broadcast_followers"])):
        raise InvalidSettings(f"followers who are not members have no {', '.join(odd)}")
    broadcast = Broadcast(
        name=name.strip() or "Chiến dịch",
        text=text.strip(),
        segment=segment.to_dict(),
        promotional=promotional,
        buttons=buttons or [],
        send_at=send_at or now,
        status=BroadcastStatus.SCHEDULED,
        created_by=created_by,
        created_at=now,
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def pause(session: Session, broadcast_id: int) -> None:
    session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.SENDING)
        .values(status=BroadcastStatus.PAUSED)
    )


def resume(session: Session, broadcast_id: int) -> None:
    """A paused broadcast sends again: its senders start when the caller commits (they read the status)."""
    resumed = rows_updated(
        session,
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.PAUSED)
        .values(status=BroadcastStatus.SENDING),
    )
    if resumed:
        senders_after_commit(session, broadcast_id)


def cancel(session: Session, broadcast_id: int, now: datetime) -> None:
    session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status.not_in([BroadcastStatus.DONE, BroadcastStatus.CANCELLED]))
        .values(status=BroadcastStatus.CANCELLED, finished_at=now)
    )
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.CANCELLED, last_error="broadcast cancelled")
    )


def progress(session: Session, broadcast_id: int) -> dict[str, Any]:
    """Counts by status (sent, pending, skipped, failed, unknown, ...) and the reasons for skips/failures."""
    counts = dict(
        session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.broadcast_id == broadcast_id)
            .group_by(OutboxMessage.status)
        ).all()
    )
    reasons = dict(
        session.execute(
            select(OutboxMessage.last_error, func.count())
            .where(
                OutboxMessage.broadcast_id == broadcast_id,
                OutboxMessage.status.in_([OutboxStatus.SKIPPED, OutboxStatus.FAILED, OutboxStatus.UNKNOWN]),
            )
            .group_by(OutboxMessage.last_error)
        ).all()
    )
    broadcast = session.get(Broadcast, broadcast_id)
    return {
        "status": broadcast.status if broadcast else None,
        "audience": broadcast.audience if broadcast else 0,
        "counts": {str(k): int(v) for k, v in counts.items()},
        "reasons": {str(k): int(v) for k, v in reasons.items()},
    }
