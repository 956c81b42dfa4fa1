"""Charity: causes the shop runs ("Quỹ áo ấm cho em") and members' donations of points to them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class Cause(Model):
    """A cause members donate points to, with a goal and the shop's matching rule (if any)."""

    __tablename__ = "causes"

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    goal_points: Mapped[int | None]  # None: no goal, only a running total
    # The shop adds match_pct% of what members give (100: one point for each point), up to match_cap_points.
    match_pct: Mapped[int] = mapped_column(default=0)
    match_cap_points: Mapped[int | None]
    ends_on: Mapped[date | None]  # donations close after this day (the shop's timezone)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Donation(Model):
    """Points a member gave to a cause: its ledger entry (a `donate` debit) says the rest."""

    __tablename__ = "donations"

    cause_id: Mapped[int] = mapped_column(BigId, ForeignKey("causes.id"), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    points: Mapped[int]
    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_entries.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
