"""Broadcasts that marketers schedule to a segment of members. Their deliveries are outbox rows."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


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
    # A gift: each recipient gets one voucher of this reward (no points), issued at fan-out, once per member.
    reward_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("rewards.id"))
    segment: Mapped[dict[str, Any]] = mapped_column(default=dict)  # loyalty.segments.Segment as JSON
    promotional: Mapped[bool] = mapped_column(default=True)  # promotions wait out the night ban
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT, index=True)
    send_at: Mapped[datetime | None]
    audience: Mapped[int] = mapped_column(default=0)
    left_out_no_consent: Mapped[int] = mapped_column(default=0, server_default="0")  # members, at fan-out
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    # Set when every recipient row exists: until then "no pending rows" does not mean done (pause+resume mid-fan-out).
    fanned_out_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # -32 (rate limit) slows the whole broadcast: nobody sends before throttle_until.
    throttle_until: Mapped[datetime | None]
    throttle_seconds: Mapped[int] = mapped_column(default=0)
    pause_reason: Mapped[str | None] = mapped_column(Text)  # why it paused by itself (Zalo quota), Vietnamese


class ImportStatus(enum.StrEnum):
    CHECKING = "checking"  # uploaded; a job reads every row (a large workbook outlasts a web request)
    PREVIEW = "preview"  # uploaded and checked, waiting for the person to confirm
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class MemberImport(Model):
    """An uploaded member list (CSV/XLSX): kept until applied so the job reads exactly what was previewed."""

    __tablename__ = "member_imports"

    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    overwrite: Mapped[bool] = mapped_column(default=False)  # replace names/birthdays already on file
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.PREVIEW)
    total_rows: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    error_rows: Mapped[list[dict[str, Any]]] = mapped_column(default=list)  # [{"line", "message"}], capped
    failure: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class BroadcastResult(Model):
    """A broadcast's results once its 7-day window closed (they cannot change after): computed once, read after.

    `figures`: {"recipients", "reached", "bought", "compared": [n, bought] | null, "control": [n, bought] | null}.
    Vouchers used are not kept here: a gift may still be used later."""

    __tablename__ = "broadcast_results"

    broadcast_id: Mapped[int] = mapped_column(BigId, ForeignKey("broadcasts.id"), unique=True)
    figures: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
