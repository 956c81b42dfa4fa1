"""Referrals: a new member links to a referrer's code; the referrer earns a bonus on the first purchase."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.errors import ReferralRefused
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


def award_referral_bonus(
    session: Session, referee: Member, earn_entry: LedgerEntry, *, rules: ProgramRules, now: datetime
) -> LedgerEntry | None:
    """On the referee's first earn, credit the referrer once (fixed points or a % of the first bill)."""
    if referee.referred_by_id is None or rules.referral_bonus_kind == "off":
        return None
    key = f"referral:{referee.id}"
    if ledger.find_entry(session, key) is not None or _earn_count(session, referee.id) != 1:
        return None
    points = _bonus_points(rules, earn_entry.bill_amount or 0)
    if points <= 0:
        return None
    referrer = lock_member(session, referee.referred_by_id, allow_blocked=True)
    if referrer.status == MemberStatus.ERASED:
        return None
    posting = ledger.Posting(
        kind=EntryKind.REFERRAL_BONUS,
        points=points,
        key=key,
        reason=f"thưởng giới thiệu {referee.name or 'bạn mới'}".strip(),
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
