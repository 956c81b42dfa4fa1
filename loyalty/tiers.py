"""Tiers: qualification on a rolling window (or lifetime), instant upgrades, downgrades only at review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from loyalty.locks import lock_member
from models import LedgerEntry, Member, Tier, TierEvent
from models.config import cached_rows


@dataclass(frozen=True)
class TierProgress:
    current: Tier | None
    next: Tier | None
    qualifying_points: int | None  # None: no higher tier to reach, so not counted

    @property
    def missing(self) -> int:
        if self.next is None or self.qualifying_points is None:
            return 0
        return max(self.next.threshold - self.qualifying_points, 0)


def list_tiers(session: Session) -> list[Tier]:
    """The shop's tiers by threshold: read once per change of the tiers (models.config), not per event."""
    return cached_rows(session, Tier, lambda s: s.scalars(select(Tier).order_by(Tier.threshold)))


def lowest_tier(session: Session) -> Tier | None:
    tiers = list_tiers(session)
    return tiers[0] if tiers else None


def tier_for(tiers: list[Tier], qualifying_points: int) -> Tier | None:
    """The highest tier whose threshold the points reach (tiers sorted by threshold)."""
    reached = [t for t in tiers if t.threshold <= qualifying_points]
    return reached[-1] if reached else None


def qualifying_points(session: Session, member_id: int, window_start: datetime | None) -> int:
    stmt = select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
        LedgerEntry.member_id == member_id, LedgerEntry.qualifying_at.is_not(None)
    )
    if window_start is not None:
        stmt = stmt.where(LedgerEntry.qualifying_at >= window_start)
    return int(session.scalar(stmt) or 0)


def upgrade_if_qualified(
    session: Session,
    member: Member,
    *,
    window_start: datetime | None,
    now: datetime,
    reason: str,
    tiers: list[Tier] | None = None,
) -> TierEvent | None:
    """Move the member up at once if their qualifying points reached a higher tier. Never moves down.
    (`tiers`: the shop's tiers by threshold, if the caller read them already in this transaction.)"""
    tiers = list_tiers(session) if tiers is None else tiers
    current = _tier(tiers, member.tier_id)
    higher = [t for t in tiers if current is None or t.threshold > current.threshold]
    # Qualifying points never exceed lifetime points: most earns can skip the SUM over the window.
    if not higher or member.points_lifetime < higher[0].threshold:
        return None
    target = tier_for(tiers, qualifying_points(session, member.id, window_start))
    if target is None or (current is not None and target.threshold <= current.threshold):
        return None
    return _change_tier(session, member, current, target, now, reason)


def review_tiers(session: Session, *, window_start: datetime | None, now: datetime) -> list[TierEvent]:
    """The periodic review: move every member to the tier their qualifying points earn, down included.

    Called by the tier-review cron job; the caller commits. Members are locked one at a time.
    """
    tiers = list_tiers(session)
    if not tiers:
        return []
    totals = _qualifying_by_member(session, window_start)
    events = []
    held = or_(Member.tier_held_until.is_(None), Member.tier_held_until <= now)  # a held tier is the owner's call
    for member_id in session.scalars(select(Member.id).where(held).order_by(Member.id)):
        target = tier_for(tiers, totals.get(member_id, 0)) or tiers[0]
        member = lock_member(session, member_id, allow_blocked=True)
        if member.tier_id != target.id:
            current = _tier(tiers, member.tier_id)
            events.append(_change_tier(session, member, current, target, now, "review"))
    return events


class TierHoldError(ValueError):
    """Why a tier cannot be assigned by hand, in Vietnamese."""


def hold_tier(
    session: Session, member_id: int, tier_id: int, *, until: datetime, reason: str, by: str, now: datetime
) -> TierEvent | None:
    """The owner puts a member in a tier until a date, whatever their points (a pilot group, staff, partners).

    The review leaves the member alone until then; afterwards `release_holds` moves them to the tier their
    points earn. Returns the tier change, if the tier changed."""
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise TierHoldError("Cần ghi lý do giữ hạng.")
    if until <= now:
        raise TierHoldError("Ngày kết thúc phải sau hôm nay.")
    tiers = list_tiers(session)
    target = _tier(tiers, tier_id)
    if target is None:
        raise TierHoldError("Không có hạng này.")
    member = lock_member(session, member_id, allow_blocked=True)
    member.tier_held_until, member.tier_held_reason, member.tier_held_by = until, reason, by
    if member.tier_id == target.id:
        return None
    return _change_tier(session, member, _tier(tiers, member.tier_id), target, now, "manual")


def release_holds(session: Session, *, window_start: datetime | None, now: datetime) -> list[TierEvent]:
    """Holds that ended: back to the tier the member's points earn (down included). The caller commits."""
    tiers = list_tiers(session)
    ended = list(session.scalars(select(Member.id).where(Member.tier_held_until <= now).order_by(Member.id)))
    events = []
    for member_id in ended:
        member = lock_member(session, member_id, allow_blocked=True)
        member.tier_held_until, member.tier_held_reason, member.tier_held_by = None, None, None
        target = tier_for(tiers, qualifying_points(session, member_id, window_start)) or (tiers[0] if tiers else None)
        if target is not None and member.tier_id != target.id:
            events.append(_change_tier(session, member, _tier(tiers, member.tier_id), target, now, "hold_ended"))
    return events


def progress(session: Session, member: Member, window_start: datetime | None) -> TierProgress:
    tiers = list_tiers(session)
    current = _tier(tiers, member.tier_id)
    higher = [t for t in tiers if current is None or t.threshold > current.threshold]
    if not higher:  # no tier (many shops) or the top one: the sum over the member's entries would answer nothing
        return TierProgress(current=current, next=None, qualifying_points=None)
    return TierProgress(
        current=current, next=higher[0], qualifying_points=qualifying_points(session, member.id, window_start)
    )


def member_counts(session: Session) -> list[tuple[Tier, int]]:
    rows = session.execute(select(Member.tier_id, func.count()).group_by(Member.tier_id)).all()
    counts = {tier_id: count for tier_id, count in rows}
    return [(tier, int(counts.get(tier.id, 0))) for tier in list_tiers(session)]


def _qualifying_by_member(session: Session, window_start: datetime | None) -> dict[int, int]:
    stmt = (
        select(LedgerEntry.member_id, func.sum(LedgerEntry.points))
        .where(LedgerEntry.qualifying_at.is_not(None))
        .group_by(LedgerEntry.member_id)
    )
    if window_start is not None:
        stmt = stmt.where(LedgerEntry.qualifying_at >= window_start)
    return {member_id: int(total or 0) for member_id, total in session.execute(stmt)}


def _tier(tiers: list[Tier], tier_id: int | None) -> Tier | None:
    return next((t for t in tiers if t.id == tier_id), None)


def _change_tier(
    session: Session, member: Member, current: Tier | None, target: Tier, now: datetime, reason: str
) -> TierEvent:
    up = current is None or target.threshold > current.threshold
    event = TierEvent(
        member_id=member.id,
        from_tier_id=current.id if current else None,
        to_tier_id=target.id,
        direction="up" if up else "down",
        reason=reason,
        created_at=now,
    )
    member.tier_id = target.id
    member.tier_since = now
    session.add(event)
    session.flush()
    return event
