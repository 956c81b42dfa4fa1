"""Paying part of a bill with points: limits, idempotency, refunds, and races (both databases)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from loyalty import ledger
from loyalty.errors import AlreadyReversed, PaymentRefused
from loyalty.payments import PaymentResult, max_payable, pay_with_points, refund_payment
from models import EntryKind, LedgerEntry, Member, PointLot
from tests.loyalty.conftest import NOW, RULES, assert_consistent, give, new_member
from tests.loyalty.test_concurrency import race

ON = replace(RULES, points_payment_enabled=True, points_payment_min_balance=20, points_payment_max_pct=50)


def pay(db: Session, member: Member, points: int, amount: int = 200_000, key: str = "p1", rules=ON) -> PaymentResult:  # type: ignore[no-untyped-def]
    result = pay_with_points(db, member.id, points, bill_amount=amount, bill_ref="HD123", key=key, rules=rules, now=NOW)
    db.commit()
    return result


def test_points_pay_part_of_a_bill_at_the_point_value(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 300, "g")
    result = pay(db, member, 50)
    assert (result.points, result.vnd, result.balance) == (50, 50_000, 250)
    entry = result.entry
    assert (entry.kind, entry.points, entry.source_ref, entry.bill_amount) == (EntryKind.PAY, -50, "HD123", 200_000)
    assert entry.details["vnd"] == 50_000
    assert_consistent(db, member.id)


def test_a_retry_or_a_double_click_spends_once(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 300, "g")
    first, again = pay(db, member, 50), pay(db, member, 50)
    assert again.replayed and again.entry.id == first.entry.id and again.balance == 250
    assert db.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.PAY)) == 1


@pytest.mark.parametrize(
    ("rules", "balance", "points", "amount", "reason", "limit"),
    [
        (RULES, 300, 50, 200_000, "off", 0),  # the owner has not switched it on (the default)
        (ON, 19, 10, 200_000, "min_balance", 20),  # holds fewer than the minimum
        (ON, 300, 101, 200_000, "over_limit", 100),  # more than 50% of 200.000đ = 100 points
        (ON, 60, 80, 200_000, "insufficient", 60),
        (ON, 300, 0, 200_000, "invalid", 0),
        (ON, 300, 5, 0, "invalid", 0),
    ],
)
def test_the_owners_limits_refuse_with_the_reason(  # type: ignore[no-untyped-def]
    db: Session, shop, rules, balance, points, amount, reason, limit
) -> None:
    member = new_member(db)
    give(db, member, balance, "g")
    with pytest.raises(PaymentRefused) as refused:
        pay(db, member, points, amount=amount, rules=rules)
    db.rollback()
    assert (refused.value.reason, refused.value.limit) == (reason, limit)
    assert db.get(Member, member.id).points_balance == balance  # type: ignore[union-attr]


def test_max_payable_follows_the_point_value_and_the_share_of_the_bill() -> None:
    assert max_payable(ON, 1_000, 250_000) == 125  # 50% of 250.000đ at 1.000đ a point
    assert max_payable(replace(ON, point_value_vnd=500), 1_000, 250_000) == 250
    assert max_payable(ON, 40, 250_000) == 40  # the balance is the cap
    assert max_payable(ON, 19, 250_000) == 0 and max_payable(RULES, 1_000, 250_000) == 0


def test_a_refund_gives_the_points_back_once_with_their_expiry(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 300, "g")
    result = pay(db, member, 120, amount=300_000)
    expiry_before = db.scalar(select(PointLot.expires_at).where(PointLot.member_id == member.id))
    reversal, replayed = refund_payment(db, result.entry.id, now=NOW)
    db.commit()
    assert (reversal.kind, reversal.points, replayed) == (EntryKind.REVERSE, 120, False)
    again, replayed_again = refund_payment(db, result.entry.id, now=NOW)  # the POS retries the refund
    assert replayed_again and again.id == reversal.id
    assert db.get(Member, member.id).points_balance == 300  # type: ignore[union-attr]
    assert db.scalar(select(PointLot.expires_at).where(PointLot.member_id == member.id)) == expiry_before
    with pytest.raises(AlreadyReversed):
        ledger.reverse(db, result.entry.id, key="other-key", now=NOW)
    db.rollback()
    assert_consistent(db, member.id)


def test_twenty_parallel_payments_never_overdraw(sessions: sessionmaker[Session], db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 500, "g")

    def attempt(i: int) -> object:
        with sessions() as s:
            result = pay_with_points(
                s, member.id, 100, bill_amount=400_000, bill_ref=f"HD{i}", key=f"till-{i}", rules=ON, now=NOW
            )
            s.commit()
            return result

    results = race(20, attempt)
    paid = [r for r in results if isinstance(r, PaymentResult)]
    refused = [r for r in results if isinstance(r, PaymentRefused)]
    assert len(paid) == 5 and len(refused) == 15, results
    assert_consistent(db, member.id)
    assert db.get(Member, member.id).points_balance == 0  # type: ignore[union-attr]
