"""Broadcasts that marketers schedule to a segment of members. Their deliveries are outbox rows."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, utcnow


class BroadcastStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class Broadcast(Model):
    __tablename__ = "broadcasts"

    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)  # may use {ten}, {diem}, {hang}
    buttons: Mapped[list[dict[str, Any]]] = mapped_column(default=list)  # [{"title", "payload"}]
    image_url: Mapped[str | None] = mapped_column(Text)
    segment: Mapped[dict[str, Any]] = mapped_column(default=dict)  # loyalty.segments.Segment as JSON
    promotional: Mapped[bool] = mapped_column(default=True)  # promotions wait out the night ban
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT, index=True)
    send_at: Mapped[datetime | None]
    audience: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # -32 (rate limit) slows the whole broadcast: nobody sends before throttle_until.
    throttle_until: Mapped[datetime | None]
    throttle_seconds: Mapped[int] = mapped_column(default=0)
