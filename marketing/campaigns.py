"""Broadcast campaigns as the console and the CLI manage them: create, pause, resume, cancel, progress.

Plain functions that take a Session and never commit; the sending itself is RQ's (jobs/broadcasts.py),
started after the caller's commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from jobs.broadcasts import senders_after_commit
from loyalty.errors import InvalidSettings
from loyalty.placeholders import ALLOWED, unknown
from loyalty.segments import Segment, audience_query, follower_query
from models import (
    Broadcast,
    BroadcastStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
    Reward,
    Voucher,
    VoucherStatus,
    ZaloTemplate,
    ZaloUser,
    rows_updated,
)
from zalo.policy import CS_WINDOW, FREE_WINDOW, Channel


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
    reward_id: int | None = None,
) -> Broadcast:
    if not text.strip() or len(text) > 2000:
        raise InvalidSettings("the message needs 1-2000 characters")
    if segment.followers and (odd := unknown(text, ALLOWED["broadcast_followers"])):
        raise InvalidSettings(f"followers who are not members have no {', '.join(odd)}")
    if reward_id is not None and (segment.followers or session.get(Reward, reward_id) is None):
        raise InvalidSettings("a gift goes to members, and needs a reward that exists")
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
        reward_id=reward_id,
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
        .values(status=BroadcastStatus.SENDING, pause_reason=None),
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


def gift_figures(session: Session, broadcast_id: int) -> dict[str, int]:
    """A gift broadcast's vouchers: how many were issued and how many have been used since."""
    mine = Voucher.idempotency_key.like(f"bc:{broadcast_id}:gift:%")
    issued = session.scalar(select(func.count()).select_from(Voucher).where(mine)) or 0
    used = session.scalar(select(func.count()).select_from(Voucher).where(mine, Voucher.status == VoucherStatus.USED))
    return {"issued": int(issued), "used": int(used or 0)}


@dataclass(frozen=True)
class Forecast:
    """How a broadcast's recipients would be reached today, by Zalo's channels, and what it would cost."""

    counts: dict[str, int]  # zalo.policy.Channel value -> recipients
    template_price: int | None  # đồng per template message, as Zalo quoted it (None: no template or unknown)

    @property
    def template_cost(self) -> int | None:
        """đồng for the template messages; None when Zalo quoted no price."""
        n = self.counts.get(Channel.TEMPLATE, 0)
        if n == 0:
            return 0
        return None if self.template_price is None else n * self.template_price


def forecast(session: Session, segment: Segment, now: datetime) -> Forecast:
    """Recipients per channel (free within 48 hours, the OA's quota up to 7 days, a template beyond, or not
    at all without one) by each one's last interaction, counted in the database."""
    template = session.scalar(select(ZaloTemplate).where(ZaloTemplate.purpose == "broadcast"))
    usable = template is not None and template.status == "ENABLE" and bool(template.mapping)
    if segment.followers:
        recipients = follower_query().subquery()
    else:
        recipients = select(Member.zalo_user_id).where(Member.id.in_(audience_query(segment, now))).subquery()
    last = ZaloUser.last_interaction_at
    bucket = case(
        (last >= now - FREE_WINDOW, Channel.FREE.value),
        (last >= now - CS_WINDOW, Channel.QUOTA.value),
        else_=(Channel.TEMPLATE if usable else Channel.NONE).value,
    )
    rows = session.execute(
        select(bucket, func.count()).where(ZaloUser.user_id.in_(select(recipients.c[0]))).group_by(bucket)
    ).all()
    price = None
    if usable and template is not None:
        price = (
            template.price_uid if template.price_uid is not None and not template.uid_refused else template.price_phone
        )
    return Forecast({str(channel): int(n) for channel, n in rows}, price)
