"""Figures for the owner's dashboard: aggregated queries only (they stay fast at 100,000 members)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.forms import an_id, bounded
from loyalty import stamps, tiers
from loyalty.phones import normalize_phone
from loyalty.program import load_rules
from loyalty.segments import active_since
from loyalty.stamps import CardFigures
from models import (
    Broadcast,
    BroadcastStatus,
    EntryKind,
    LedgerEntry,
    Member,
    MemberGroup,
    Reward,
    StampCard,
    Voucher,
    ZaloUser,
)


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
    stamp_cards: list[tuple[StampCard, CardFigures]]  # the running cards and how they do


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
    # One pass over members for every member figure (five separate counts cost five table scans).
    per_tier_rows = session.execute(
        _with_zalo_user(
            select(
                Member.tier_id,
                func.count(),
                func.count().filter(Member.joined_at >= week_ago),
                func.count().filter(active_since(month_ago)),
                func.coalesce(func.sum(Member.points_balance), 0),
            ).select_from(Member)
        ).group_by(Member.tier_id)
    ).all()
    total, new, active, outstanding = (sum(int(row[i]) for row in per_tier_rows) for i in range(1, 5))
    by_tier = {row[0]: int(row[1]) for row in per_tier_rows}
    return Dashboard(
        members=total,
        new_this_week=new,
        active_30_days=active,
        issued_this_month=int(by_kind.get(EntryKind.EARN, 0)) + int(by_kind.get(EntryKind.REFERRAL_BONUS, 0)),
        redeemed_this_month=-int(by_kind.get(EntryKind.REDEEM, 0)),
        expired_this_month=-int(by_kind.get(EntryKind.EXPIRE, 0)),
        outstanding_points=outstanding,
        liability_vnd=outstanding * load_rules(session).point_value_vnd,
        per_tier=[(tier.name, by_tier.get(tier.id, 0)) for tier in tiers.list_tiers(session)],
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
        stamp_cards=_stamp_cards(session),
    )


def _stamp_cards(session: Session) -> list[tuple[StampCard, CardFigures]]:
    running = stamps.active_cards(session)
    if not running:
        return []
    by_card = stamps.figures(session)
    return [(card, by_card.get(card.id, CardFigures())) for card in running]


def _with_zalo_user(stmt: Any) -> Any:
    """What `active_since` reads: the member's Zalo user, if any (an outer join, one row per member)."""
    return stmt.outerjoin(ZaloUser, ZaloUser.user_id == Member.zalo_user_id)


def _matching(session: Session, text: str) -> Any:
    """A phone or a member code matches exactly (indexed); anything else searches names."""
    phone = normalize_phone(text)
    if phone:
        return Member.phone == phone
    if " " not in text and session.scalar(select(Member.id).where(Member.code == text.upper())) is not None:
        return Member.code == text.upper()
    return Member.name.ilike(f"%{text}%")


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class MemberFilter:
    q: str = ""
    tier_id: int | None = None
    activity: str = ""  # "active" | "inactive" (30 days)
    birthday_month: int | None = None
    consent: str = ""  # "granted" | "withdrawn" | "unknown"
    group: str = ""  # members of this group (loyalty.groups)


PAGE_SIZE = 50
CONSENT_STATES = ("granted", "withdrawn", "unknown")


def member_filter(args: Any) -> MemberFilter:
    """The filter from the member list's query string (?q=&tier=&activity=&birthday_month=)."""
    return MemberFilter(
        q=args.get("q", ""),
        tier_id=args.get("tier", type=an_id),
        activity=args.get("activity", ""),
        birthday_month=args.get("birthday_month", type=bounded(1, 12)),
        consent=args.get("consent", "") if args.get("consent", "") in CONSENT_STATES else "",
        group=" ".join(str(args.get("group", "")).split())[:60],
    )


def member_query(session: Session, flt: MemberFilter, now: datetime) -> Any:
    """select(Member) narrowed by the filter: the member list, and the export of what it shows."""
    stmt = select(Member)
    if flt.q.strip():
        stmt = stmt.where(_matching(session, flt.q.strip()))
    if flt.tier_id:
        stmt = stmt.where(Member.tier_id == flt.tier_id)
    if flt.birthday_month:
        from sqlalchemy import extract

        stmt = stmt.where(extract("month", Member.birthday) == flt.birthday_month)
    if flt.consent:
        stmt = stmt.where(Member.marketing_consent == flt.consent)
    if flt.group:
        in_group = select(MemberGroup.id).where(MemberGroup.member_id == Member.id, MemberGroup.name == flt.group)
        stmt = stmt.where(in_group.exists())
    if flt.activity in ("active", "inactive"):
        active = active_since(now - timedelta(days=30))
        stmt = _with_zalo_user(stmt).where(active if flt.activity == "active" else ~active)
    return stmt


def search_members(session: Session, flt: MemberFilter, page: int, now: datetime) -> tuple[list[Member], int]:
    """A page of members (newest first) and the total count."""
    stmt = member_query(session, flt, now)
    total = _count(session, select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Member.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE))
    return list(rows), total
