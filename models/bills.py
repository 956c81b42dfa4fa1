"""Bills of customers who are not members, recorded by the POS or the cashier: the "all bills" side of the
owner's results (members' share of revenue, their bill size against everyone's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class WalkInBill(Model):
    __tablename__ = "walk_in_bills"
    __table_args__ = (Index("ix_walk_in_bills_created_at", "created_at"),)

    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    amount: Mapped[int]  # đ
    bill_ref: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(20), default="counter")  # counter | pos
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
