"""Paid membership (VIP): the plans a shop sells and each sale, whose period holds the member's tier."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class VipPlan(Model):
    """ "VIP 6 tháng — 299.000đ": held in `tier_id` for `duration_days`, whatever the points."""

    __tablename__ = "vip_plans"

    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[int]  # đ
    duration_days: Mapped[int]
    tier_id: Mapped[int] = mapped_column(BigId, ForeignKey("tiers.id"))
    benefits: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VipMembership(Model):
    """One sale of a plan: the period it paid for (a renewal starts where the previous period ends)."""

    __tablename__ = "vip_memberships"
    __table_args__ = (Index("ix_vip_memberships_member_id_ends_at", "member_id", "ends_at"),)

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    plan_id: Mapped[int] = mapped_column(BigId, ForeignKey("vip_plans.id"))
    price: Mapped[int]  # what was paid, đ (the plan's price may change later)
    tier_id: Mapped[int] = mapped_column(BigId, ForeignKey("tiers.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    bill_ref: Mapped[str | None] = mapped_column(String(120))
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    sold_by: Mapped[str | None] = mapped_column(String(64))
    reminded_at: Mapped[datetime | None]  # the renewal reminder went out
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
