"""Counter claims: a one-time code for a bill's points that the customer sends to the OA.

The code travels in the chat message because Zalo passes no parameters through OA links. A claim
expires (default 24 h), is used once, and belongs to whoever sends it first: the claim row is
locked, so two people racing for one code get one winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import earning
from loyalty.codes import normalize_code, unused_code
from loyalty.errors import ClaimExpired, ClaimNotFound, ClaimUsed, InvalidAmount
from loyalty.program import ProgramRules
from models import Claim, ClaimStatus, Member, lock_row

CLAIM_TTL = timedelta(hours=24)
CLAIM_CODE_LENGTH = 6  # 32^6 ≈ 10^9 codes; guessing is throttled per Zalo user (bot) besides


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    earned: earning.EarnResult
    replayed: bool = False


def create_claim(
    session: Session,
    amount: int,
    *,
    key: str,
    now: datetime,
    store_id: int | None = None,
    bill_ref: str | None = None,
    created_by: str | None = None,
    ttl: timedelta = CLAIM_TTL,
) -> tuple[Claim, bool]:
    """A claim for a bill of `amount` đ, once per `key`. Returns (claim, replayed)."""
    if not 0 < amount <= earning.MAX_BILL_AMOUNT:
        raise InvalidAmount(f"bill amount {amount}")
    existing = session.scalar(select(Claim).where(Claim.idempotency_key == key))
    if existing is not None:
        return existing, True
    if bill_ref:
        earning.check_bill_not_credited(session, bill_ref, store_id)
    claim = Claim(
        code=_free_code(session),
        amount=amount,
        bill_ref=bill_ref,
        store_id=store_id,
        idempotency_key=key,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
        status=ClaimStatus.OPEN,
    )
    session.add(claim)
    session.flush()
    return claim, False


def find_claim(session: Session, code: str) -> Claim | None:
    normalized = normalize_code(code)
    if len(normalized) != CLAIM_CODE_LENGTH:
        return None
    return session.scalar(select(Claim).where(Claim.code == normalized))


def claim_points(
    session: Session, member_id: int, code: str, *, now: datetime, rules: ProgramRules, tz: ZoneInfo
) -> ClaimResult:
    """Credit the claim's bill to the member. Raises ClaimNotFound, ClaimExpired or ClaimUsed."""
    found = find_claim(session, code)
    if found is None:
        raise ClaimNotFound(code)
    claim = lock_row(session, Claim, found.id)
    assert claim is not None
    if claim.status == ClaimStatus.CLAIMED:
        if claim.member_id == member_id and claim.entry_id is not None:  # the same person, sending it again
            earned = earning.earn(session, member_id, claim.amount, key=_earn_key(claim), rules=rules, tz=tz, now=now)
            return ClaimResult(claim, earned, replayed=True)
        raise ClaimUsed(claim.code)
    if claim.status == ClaimStatus.CANCELLED:
        raise ClaimUsed(claim.code)
    if claim.expires_at <= now:
        raise ClaimExpired(claim.code)
    earned = earning.earn(
        session,
        member_id,
        claim.amount,
        key=_earn_key(claim),
        rules=rules,
        tz=tz,
        now=now,
        store_id=claim.store_id,
        channel=claim.channel,
        bill_ref=claim.bill_ref,
    )
    claim.status, claim.member_id, claim.claimed_at = ClaimStatus.CLAIMED, member_id, now
    claim.entry_id = earned.entry.id if earned.entry else None
    return ClaimResult(claim, earned)


def _earn_key(claim: Claim) -> str:
    return f"claim:{claim.id}"


def _free_code(session: Session) -> str:
    def taken(code: str) -> bool:
        # Referral codes have the same shape; never hand out one a member already has.
        return (
            session.scalar(select(Claim.id).where(Claim.code == code))
            or session.scalar(select(Member.id).where(Member.code == code))
        ) is not None

    return unused_code(CLAIM_CODE_LENGTH, taken)
