"""Webhook events as received from Zalo: the durable inbox of the event path."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, utcnow


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, waiting for a worker's lane (jobs.lane) or a retry
    PROCESSED = "processed"  # bot ran, replies are in the outbox
    FAILED = "failed"  # last attempt raised; error holds the traceback
    IGNORED = "ignored"  # nothing to do for this event type


class WebhookEvent(Model):
    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_status_received_at", "status", "received_at"),
        # The lanes' queue: the waiting events in order of arrival, however long the table grows.
        Index(
            "ix_webhook_events_waiting",
            "id",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
    )

    # msg_id when Zalo gives one, else a hash of event name + user + timestamp (webhooks.intake).
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    event_name: Mapped[str] = mapped_column(String(64))
    zalo_user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]  # a lane is handling it until then (jobs.lane); a dead lane's lapses
    pruned_at: Mapped[datetime | None]  # the body (names, phones) emptied after the retention period
