"""Charity: members give points to a cause ("ủng hộ 50" in the chat), the shop may match them, and anyone can
read the running total (the public report page names no donor).

A donation is a `donate` ledger debit (taken from the soonest-expiring points, like a redemption) and a
`donations` row, once per key under the member's lock. The đồng figure is points × the program's point value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.errors import InvalidAmount, LoyaltyError
from loyalty.locks import lock_member
from models import Cause, Donation, EntryKind

MAX_DONATION = 1_000_000  # points in one message: beyond it, a typo
BAR_CELLS = 10


class CauseClosed(LoyaltyError):
    code = "cause_closed"


@dataclass(frozen=True)
class DonationResult:
    donation: Donation
    balance: int
    replayed: bool = False


@dataclass(frozen=True)
class CauseProgress:
    cause: Cause
    points: int  # given by members
    donors: int
    matched: int  # the shop's share under its matching rule

    @property
    def total(self) -> int:
        return self.points + self.matched

    @property
    def percent(self) -> int | None:
        goal = self.cause.goal_points
        return min(self.total * 100 // goal, 100) if goal else None

    def bar(self) -> str:
        """▓▓▓▓▓░░░░░ for the chat: how far the total is toward the goal."""
        filled = (self.percent or 0) * BAR_CELLS // 100
        return "▓" * filled + "░" * (BAR_CELLS - filled)


def open_causes(session: Session, today: date) -> list[Cause]:
    """Causes members can give to now, oldest first (their numbers in the chat)."""
    stmt = select(Cause).where(Cause.is_active.is_(True)).order_by(Cause.id)
    return [c for c in session.scalars(stmt) if c.ends_on is None or c.ends_on >= today]


def donate(
    session: Session, member_id: int, cause_id: int, points: int, *, key: str, now: datetime, today: date
) -> DonationResult:
    """Give `points` to the cause once per `key`. Raises InsufficientPoints, InvalidAmount, CauseClosed."""
    if not 0 < points <= MAX_DONATION:
        raise InvalidAmount(f"donation of {points} points")
    member = lock_member(session, member_id)
    existing = ledger.find_entry(session, key)
    if existing is not None:
        donation = session.scalar(select(Donation).where(Donation.entry_id == existing.id))
        assert donation is not None
        return DonationResult(donation, member.points_balance, replayed=True)
    cause = session.get(Cause, cause_id)
    if cause is None or not cause.is_active or (cause.ends_on is not None and cause.ends_on < today):
        raise CauseClosed(str(cause_id))
    posting = ledger.Posting(
        kind=EntryKind.DONATE,
        points=points,
        key=key,
        reason=f"ủng hộ {cause.name}",
        source_ref=f"cause:{cause.id}",
        details={"cause_id": cause.id},
    )
    entry = ledger.debit(session, member, posting, now=now)
    donation = Donation(cause_id=cause.id, member_id=member_id, points=points, entry_id=entry.id, created_at=now)
    session.add(donation)
    session.flush()
    return DonationResult(donation, member.points_balance)


def progress(session: Session, cause: Cause) -> CauseProgress:
    points, donors = session.execute(
        select(func.coalesce(func.sum(Donation.points), 0), func.count(func.distinct(Donation.member_id))).where(
            Donation.cause_id == cause.id
        )
    ).one()
    matched = int(points) * cause.match_pct // 100
    if cause.match_cap_points is not None:
        matched = min(matched, cause.match_cap_points)
    return CauseProgress(cause, int(points), int(donors), matched)


def given_by(session: Session, member_id: int, cause_id: int) -> int:
    stmt = select(func.coalesce(func.sum(Donation.points), 0)).where(
        Donation.member_id == member_id, Donation.cause_id == cause_id
    )
    return int(session.scalar(stmt) or 0)
