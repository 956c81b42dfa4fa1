"""Paying part of a bill with points at the till ("trừ điểm vào hóa đơn"), at the program's point value.

1 point = `ProgramRules.point_value_vnd` đồng (1.000đ by default). The owner switches it on and sets the
limits: the member must hold at least `min_balance` points, and points pay at most `max_bill_pct` percent of
the bill. A payment is one `pay` ledger entry (a debit from the soonest-expiring lots), idempotent on its key;
a refunded bill reverses it once and the points go back to the lots they came from, with their expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.errors import PaymentRefused
from loyalty.locks import lock_member
from loyalty.program import ProgramRules
from models import EntryKind, LedgerEntry


@dataclass(frozen=True)
class PaymentResult:
    entry: LedgerEntry
    points: int
    vnd: int
    balance: int
    replayed: bool = False


def max_payable(rules: ProgramRules, balance: int, bill_amount: int) -> int:
    """The most points this member may put toward this bill (0: none)."""
    if not rules.points_payment_enabled or bill_amount <= 0 or balance < rules.points_payment_min_balance:
        return 0
    cap_vnd = bill_amount * rules.points_payment_max_pct // 100
    return min(balance, cap_vnd // rules.point_value_vnd)


def pay_with_points(
    session: Session,
    member_id: int,
    points: int,
    *,
    bill_amount: int,
    bill_ref: str | None,
    key: str,
    rules: ProgramRules,
    now: datetime,
    actor: ledger.Actor = ledger.SYSTEM,
    store_id: int | None = None,
    channel: str | None = None,
) -> PaymentResult:
    """Spend `points` on the bill, once per `key` (a retry or a double click gets the first payment back)."""
    member = lock_member(session, member_id)
    existing = ledger.find_entry(session, key)
    if existing is not None:
        spent = -existing.points
        return PaymentResult(existing, spent, spent * rules.point_value_vnd, member.points_balance, replayed=True)
    if not rules.points_payment_enabled:
        raise PaymentRefused("off")
    if points <= 0 or bill_amount <= 0:
        raise PaymentRefused("invalid")
    if member.points_balance < rules.points_payment_min_balance:
        raise PaymentRefused("min_balance", rules.points_payment_min_balance)
    if points > member.points_balance:
        raise PaymentRefused("insufficient", member.points_balance)
    limit = max_payable(rules, member.points_balance, bill_amount)
    if points > limit:
        raise PaymentRefused("over_limit", limit)
    vnd = points * rules.point_value_vnd
    entry = ledger.debit(
        session,
        member,
        ledger.Posting(
            kind=EntryKind.PAY,
            points=points,
            key=key,
            reason=f"trừ vào hóa đơn {bill_ref}" if bill_ref else "trừ vào hóa đơn",
            actor=actor,
            source_ref=bill_ref,
            store_id=store_id,
            channel=channel,
            bill_amount=bill_amount,
            details={"vnd": vnd, "point_value_vnd": rules.point_value_vnd},
        ),
        now=now,
    )
    return PaymentResult(entry, points, vnd, member.points_balance)


def refund_payment(
    session: Session, entry_id: int, *, now: datetime, actor: ledger.Actor = ledger.SYSTEM
) -> tuple[LedgerEntry, bool]:
    """Give the points of a refunded bill back, once: (the reversal, replayed)."""
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.kind != EntryKind.PAY:
        raise PaymentRefused("invalid")
    return ledger.reverse(
        session, entry_id, key=f"refund-pay:{entry_id}", now=now, actor=actor, reason="hoàn tiền hóa đơn"
    )
