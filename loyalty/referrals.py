"""Referrals: a new member links to a referrer's code. On the new member's first purchase the referrer earns
a bonus and, if the owner set one, the new member too; afterwards the referrer may earn an affiliate share of
the new member's bills for a number of days, up to a cap. Every credit is keyed (once per referee, once per
bill), and a refunded bill takes its affiliate share back (loyalty.earning's callers reverse it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.errors import InsufficientPoints, ReferralRefused
from loyalty.locks import lock_member
from loyalty.members import find_by_code
from loyalty.program import ProgramRules
from models import EntryKind, LedgerEntry, Member, MemberStatus

MAX_CHAIN = 1000  # a referral chain longer than this is corrupt data, not a family tree


def link_referral(session: Session, member: Member, code: str) -> Member:
    """Record who referred `member`. Refused for self-referral, loops, a second referrer, or after buying."""
    referrer = find_by_code(session, code)
    if referrer is None:
        raise ReferralRefused("unknown_code")
    if referrer.id == member.id:
        raise ReferralRefused("self")
    if member.referred_by_id is not None:
        raise ReferralRefused("already_referred")
    if _has_earned(session, member.id):
        raise ReferralRefused("already_purchased")
    if _refers_back_to(session, referrer, member.id):
        raise ReferralRefused("loop")
    member.referred_by_id = referrer.id
    return referrer


@dataclass(frozen=True)
class ReferralCredits:
    """What a referee's earn gave: the referrer's entry (first-purchase bonus or affiliate share) and the
    referee's own first-purchase bonus, each None when nothing was given."""

    referrer: LedgerEntry | None = None
    referee: LedgerEntry | None = None
    affiliate: bool = False  # the referrer's entry is an affiliate share, not the first-purchase bonus


def award_referral(
    session: Session, referee: Member, earn_entry: LedgerEntry, *, rules: ProgramRules, now: datetime
) -> ReferralCredits:
    """After each earn of a referred member: the first-purchase bonuses once, then the affiliate share."""
    if referee.referred_by_id is None or rules.referral_bonus_kind == "off":
        return ReferralCredits()
    if _earn_count(session, referee.id) == 1:
        return ReferralCredits(
            referrer=_referrer_bonus(session, referee, earn_entry, rules=rules, now=now),
            referee=_referee_bonus(session, referee, earn_entry, rules=rules, now=now),
        )
    share = _affiliate_share(session, referee, earn_entry, rules=rules, now=now)
    return ReferralCredits(referrer=share, affiliate=share is not None)


def take_back_affiliate_share(
    session: Session, earn: LedgerEntry, *, now: datetime, actor: ledger.Actor = ledger.SYSTEM
) -> LedgerEntry | None:
    """A refunded bill's affiliate share goes back too, if the referrer still holds the points. Returns the
    share the referrer keeps because they spent it already (the caller records that), else None."""
    share = ledger.find_entry(session, f"affiliate:{earn.id}")
    if share is None:
        return None
    try:
        with session.begin_nested():
            ledger.reverse(session, share.id, key=f"refund:{share.id}", now=now, actor=actor, reason="hoàn hóa đơn")
    except InsufficientPoints:
        return share
    return None


def _referrer_bonus(
    session: Session, referee: Member, earn_entry: LedgerEntry, *, rules: ProgramRules, now: datetime
) -> LedgerEntry | None:
    """On the referee's first earn (award_referral checked it), the referrer's bonus: fixed points or a % of
    the first bill. Once: _credit_referrer finds an earlier one by its key."""
    points = _bonus_points(rules, earn_entry.bill_amount or 0)
    if points <= 0:
        return None
    reason = f"thưởng giới thiệu {referee.name or 'bạn mới'}".strip()
    return _credit_referrer(session, referee, earn_entry, points, f"referral:{referee.id}", reason, rules, now)


def _referee_bonus(
    session: Session, referee: Member, earn_entry: LedgerEntry, *, rules: ProgramRules, now: datetime
) -> LedgerEntry | None:
    key = f"referee:{referee.id}"
    if rules.referee_bonus_points <= 0 or ledger.find_entry(session, key) is not None:
        return None
    posting = ledger.Posting(
        kind=EntryKind.REFERRAL_BONUS,
        points=rules.referee_bonus_points,
        key=key,
        reason="thưởng được giới thiệu",
        source_ref=referee.code,
        details={"referee_id": referee.id, "earn_id": earn_entry.id},
    )
    return ledger.credit(session, referee, posting, now=now, expires_at=rules.expiry_for(now))


def _affiliate_share(
    session: Session, referee: Member, earn_entry: LedgerEntry, *, rules: ProgramRules, now: datetime
) -> LedgerEntry | None:
    """The referrer's share of a later bill, within the period after the referee joined and under the cap."""
    pct, days, cap = rules.referral_affiliate_pct, rules.referral_affiliate_days, rules.referral_affiliate_cap
    if pct <= 0 or now - referee.joined_at > timedelta(days=days):
        return None
    points = (earn_entry.bill_amount or 0) * pct // 100 // rules.point_value_vnd
    if cap:
        given = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
                LedgerEntry.kind == EntryKind.REFERRAL_BONUS,
                LedgerEntry.source_ref == referee.code,
                LedgerEntry.idempotency_key.like("affiliate:%"),
            )
        )
        points = min(points, cap - int(given or 0))
    if points <= 0:
        return None
    key = f"affiliate:{earn_entry.id}"
    reason = f"hoa hồng từ hóa đơn của {referee.name or 'bạn được giới thiệu'}".strip()
    return _credit_referrer(session, referee, earn_entry, points, key, reason, rules, now)


def _credit_referrer(
    session: Session,
    referee: Member,
    earn_entry: LedgerEntry,
    points: int,
    key: str,
    reason: str,
    rules: ProgramRules,
    now: datetime,
) -> LedgerEntry | None:
    assert referee.referred_by_id is not None
    referrer = lock_member(session, referee.referred_by_id, allow_blocked=True)
    if referrer.status == MemberStatus.ERASED or ledger.find_entry(session, key) is not None:
        return None
    posting = ledger.Posting(
        kind=EntryKind.REFERRAL_BONUS,
        points=points,
        key=key,
        reason=reason,
        source_ref=referee.code,
        details={"referee_id": referee.id, "earn_id": earn_entry.id},
    )
    return ledger.credit(session, referrer, posting, now=now, expires_at=rules.expiry_for(now))


def _bonus_points(rules: ProgramRules, first_bill: int) -> int:
    if rules.referral_bonus_kind == "fixed":
        return rules.referral_bonus_value
    # percent: that share of the first bill, turned into points at the program's point value
    return first_bill * rules.referral_bonus_value // 100 // rules.point_value_vnd


def _has_earned(session: Session, member_id: int) -> bool:
    return _earn_count(session, member_id) > 0


def _earn_count(session: Session, member_id: int) -> int:
    stmt = select(LedgerEntry.id).where(LedgerEntry.member_id == member_id, LedgerEntry.kind == EntryKind.EARN)
    return len(session.scalars(stmt.limit(2)).all())


def _refers_back_to(session: Session, referrer: Member, member_id: int) -> bool:
    current: Member | None = referrer
    for _ in range(MAX_CHAIN):
        if current is None or current.referred_by_id is None:
            return False
        if current.referred_by_id == member_id:
            return True
        current = session.get(Member, current.referred_by_id)
    return True
