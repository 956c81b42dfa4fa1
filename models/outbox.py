"""Outgoing Zalo messages, written in the same transaction as the work that caused them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; a stale claim is taken over (see jobs.outbox)
    SENT = "sent"
    FAILED = "failed"  # permanent error or attempts used up; last_error says why
    SKIPPED = "skipped"  # Zalo's rules do not allow it (outside the window, no template); last_error says why
    CANCELLED = "cancelled"  # its broadcast was cancelled
    UNKNOWN = "unknown"  # a broadcast send interrupted by a crash: Zalo may have it, so it is not sent again


class OutboxMessage(Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_status_created_at", "status", "created_at"),
        Index("ix_outbox_messages_broadcast_id_status", "broadcast_id", "status"),
    )

    # Idempotency key of the send, e.g. "evt-42:0": a retried job finds the row instead of adding one.
    key: Mapped[str] = mapped_column(String(160), unique=True)
    zalo_user_id: Mapped[str | None] = mapped_column(String(32), index=True)  # None: a template sent by phone
    # "message": `message` is the object for POST /v3.0/oa/message/cs as is.
    # "member_card": `message` is {"member_id", "caption"}; the card is drawn and uploaded at send time.
    # "stamp_card": `message` is {"stamp_card_id", "stamps", "caption"}; drawn and uploaded the same way.
    # "proactive": `message` is {"text", "promotional", "buttons"}; the route (cs, template, skip, wait for
    #   the morning) is decided at send time by zalo.policy.
    kind: Mapped[str] = mapped_column(String(20), default="message", server_default="message")
    message: Mapped[dict[str, Any]]
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("webhook_events.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    zalo_message_id: Mapped[str | None] = mapped_column(String(64), index=True)  # receipts name it
    broadcast_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("broadcasts.id"), index=True)
    not_before: Mapped[datetime | None]  # deferred (night ban): not sent before this time
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]  # Zalo's user_received_message
    seen_at: Mapped[datetime | None]  # Zalo's user_seen_message
    pruned_at: Mapped[datetime | None]  # the text emptied after the retention period
