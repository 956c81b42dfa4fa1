"""Paid membership (VIP): a member buys a plan at the counter or through the POS; their tier is held for the
period whatever their points, renewals extend it from where it ends, and when it ends the daily tier job
(`tiers.release_holds`) returns them to the tier their points earn.

The hold is the one the owner sets by hand (`tiers.hold_tier`): a sale never shortens a longer hold, and never
puts a member below the tier they already have (a Kim cương member who buys "VIP Vàng" keeps Kim cương, held).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from loyalty.errors import LoyaltyError
from loyalty.locks import lock_member
from loyalty.tiers import hold_tier, list_tiers
from models import Member, MemberStatus, Tier, TierEvent, VipMembership, VipPlan

_Latest = aliased(VipMembership, name="latest")


class VipUnavailable(LoyaltyError):
    code = "vip_unavailable"


@dataclass(frozen=True)
class VipSale:
    membership: VipMembership
    plan: VipPlan
    tier: Tier
    tier_event: TierEvent | None = None
    replayed: bool = False


def active_plans(session: Session) -> list[VipPlan]:
    return list(session.scalars(select(VipPlan).where(VipPlan.is_active.is_(True)).order_by(VipPlan.price)))


def sell(
    session: Session,
    member_id: int,
    plan_id: int,
    *,
    key: str,
    now: datetime,
    by: str,
    store_id: int | None = None,
    bill_ref: str | None = None,
) -> VipSale:
    """Sell a plan once per `key`: a new period (from now, or from the end of the current one) and the tier held
    to its end."""
    member = lock_member(session, member_id)
    existing = session.scalar(select(VipMembership).where(VipMembership.idempotency_key == key))
    if existing is not None:
        plan, tier = session.get(VipPlan, existing.plan_id), session.get(Tier, existing.tier_id)
        assert plan is not None and tier is not None
        return VipSale(existing, plan, tier, replayed=True)
    plan = session.get(VipPlan, plan_id)
    if plan is None or not plan.is_active:
        raise VipUnavailable(f"plan {plan_id}")
    current = current_membership(session, member_id, now)
    starts_at = current.ends_at if current is not None else now
    ends_at = starts_at + timedelta(days=plan.duration_days)
    tier = _held_tier(session, member, plan)
    membership = VipMembership(
        member_id=member_id,
        plan_id=plan.id,
        price=plan.price,
        tier_id=tier.id,
        starts_at=starts_at,
        ends_at=ends_at,
        idempotency_key=key,
        bill_ref=bill_ref,
        store_id=store_id,
        sold_by=by,
        created_at=now,
    )
    session.add(membership)
    until = max(ends_at, member.tier_held_until) if member.tier_held_until else ends_at
    event = hold_tier(session, member_id, tier.id, until=until, reason=f"VIP: {plan.name}", by=by, now=now)
    session.flush()
    return VipSale(membership, plan, tier, event)


def current_membership(session: Session, member_id: int, now: datetime) -> VipMembership | None:
    """The member's paid period that ends last, if it has not ended."""
    stmt = (
        select(VipMembership)
        .where(VipMembership.member_id == member_id, VipMembership.ends_at > now)
        .order_by(VipMembership.ends_at.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def ending_soon(session: Session, now: datetime, days: int) -> list[VipMembership]:
    """Periods ending within `days` that were not renewed (no later period) and not reminded yet."""
    later = select(VipMembership.id).where(
        VipMembership.member_id == _Latest.member_id, VipMembership.ends_at > _Latest.ends_at
    )
    stmt = (
        select(_Latest)
        .join(Member, Member.id == _Latest.member_id)
        .where(
            _Latest.ends_at > now,
            _Latest.ends_at <= now + timedelta(days=days),
            _Latest.reminded_at.is_(None),
            Member.status == MemberStatus.ACTIVE,
            ~later.exists(),
        )
        .order_by(_Latest.ends_at)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class VipFigures:
    members: int  # with a paid period running now
    sold_this_month: int
    revenue_this_month: int  # đ


def figures(session: Session, now: datetime, month_start: datetime) -> dict[int, VipFigures]:
    """Per plan: members in a paid period now, sales and revenue since `month_start`."""
    running = dict(
        session.execute(
            select(VipMembership.plan_id, func.count(func.distinct(VipMembership.member_id)))
            .where(VipMembership.starts_at <= now, VipMembership.ends_at > now)
            .group_by(VipMembership.plan_id)
        ).all()
    )
    sold = {
        plan_id: (int(n), int(total or 0))
        for plan_id, n, total in session.execute(
            select(VipMembership.plan_id, func.count(), func.sum(VipMembership.price))
            .where(VipMembership.created_at >= month_start)
            .group_by(VipMembership.plan_id)
        ).all()
    }
    ids = set(running) | set(sold)
    return {i: VipFigures(int(running.get(i) or 0), sold.get(i, (0, 0))[0], sold.get(i, (0, 0))[1]) for i in ids}


def _held_tier(session: Session, member: Member, plan: VipPlan) -> Tier:
    """The plan's tier, or the member's own if it is higher."""
    tiers = list_tiers(session)
    planned = next((t for t in tiers if t.id == plan.tier_id), None)
    own = next((t for t in tiers if t.id == member.tier_id), None)
    if planned is None:
        raise VipUnavailable(f"plan {plan.id} names no tier")
    return own if own is not None and own.threshold > planned.threshold else planned
