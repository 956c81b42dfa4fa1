"""Figures for the owner's dashboard: aggregated queries only (they stay fast at 100,000 members)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from loyalty import tiers
from loyalty.program import load_rules
from models import Broadcast, BroadcastStatus, EntryKind, LedgerEntry, Member, Reward, Voucher, ZaloUser


@dataclass(frozen=True)
class Dashboard:
    members: int
    new_this_week: int
    active_30_days: int
    issued_this_month: int
    redeemed_this_month: int
    expired_this_month: int
    outstanding_points: int
    liability_vnd: int
    per_tier: list[tuple[str, int]]
    top_rewards: list[tuple[str, int]]
    upcoming: list[Broadcast]


def dashboard(session: Session, now: datetime, tz: ZoneInfo) -> Dashboard:
    local = now.astimezone(tz)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    week_ago, month_ago = now - timedelta(days=7), now - timedelta(days=30)
    by_kind = dict(
        session.execute(
            select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.points), 0))
            .where(LedgerEntry.created_at >= month_start)
            .group_by(LedgerEntry.kind)
        ).all()
    )
    outstanding = int(session.scalar(select(func.coalesce(func.sum(Member.points_balance), 0))) or 0)
    return Dashboard(
        members=_count(session, select(func.count()).select_from(Member)),
        new_this_week=_count(session, select(func.count()).where(Member.joined_at >= week_ago)),
        active_30_days=_count(session, select(func.count()).select_from(Member).where(_active_since(month_ago))),
        issued_this_month=int(by_kind.get(EntryKind.EARN, 0)) + int(by_kind.get(EntryKind.REFERRAL_BONUS, 0)),
        redeemed_this_month=-int(by_kind.get(EntryKind.REDEEM, 0)),
        expired_this_month=-int(by_kind.get(EntryKind.EXPIRE, 0)),
        outstanding_points=outstanding,
        liability_vnd=outstanding * load_rules(session).point_value_vnd,
        per_tier=[(tier.name, count) for tier, count in tiers.member_counts(session)],
        top_rewards=[
            (name, int(n))
            for name, n in session.execute(
                select(Reward.name, func.count(Voucher.id))
                .join(Voucher, Voucher.reward_id == Reward.id)
                .group_by(Reward.name)
                .order_by(func.count(Voucher.id).desc())
                .limit(5)
            ).all()
        ],
        upcoming=list(
            session.scalars(
                select(Broadcast)
                .where(Broadcast.status == BroadcastStatus.SCHEDULED)
                .order_by(Broadcast.send_at)
                .limit(5)
            )
        ),
    )


def _active_since(since: datetime) -> Any:
    """Interacted in the chat or earned points since `since`."""
    interacted = (
        select(ZaloUser.id)
        .where(ZaloUser.user_id == Member.zalo_user_id, ZaloUser.last_interaction_at >= since)
        .exists()
    )
    earned = (
        select(LedgerEntry.id)
        .where(LedgerEntry.member_id == Member.id, LedgerEntry.kind == EntryKind.EARN, LedgerEntry.created_at >= since)
        .exists()
    )
    return or_(interacted, earned)


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class MemberFilter:
    q: str = ""
    tier_id: int | None = None
    activity: str = ""  # "active" | "inactive" (30 days)
    birthday_month: int | None = None


PAGE_SIZE = 50


def search_members(session: Session, flt: MemberFilter, page: int, now: datetime) -> tuple[list[Member], int]:
    """A page of members (newest first) and the total count."""
    from loyalty.phones import normalize_phone

    stmt = select(Member)
    if flt.q.strip():
        text = flt.q.strip()
        phone = normalize_phone(text)
        conditions = [Member.name.ilike(f"%{text}%"), Member.code == text.upper()]
        if phone:
            conditions.append(Member.phone == phone)
        stmt = stmt.where(or_(*conditions))
    if flt.tier_id:
        stmt = stmt.where(Member.tier_id == flt.tier_id)
    if flt.birthday_month:
        from sqlalchemy import extract

        stmt = stmt.where(extract("month", Member.birthday) == flt.birthday_month)
    if flt.activity in ("active", "inactive"):
        active = _active_since(now - timedelta(days=30))
        stmt = stmt.where(active if flt.activity == "active" else ~active)
    total = _count(session, select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Member.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE))
    return list(rows), total
