"""Races on a real database: parallel redemptions and duplicate deliveries (PostgreSQL row locks)."""

import threading
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from loyalty import earning, rewards
from loyalty.errors import InsufficientPoints
from models import LedgerEntry, Member, Voucher
from tests.loyalty.conftest import NOW, RULES, TZ, assert_consistent, give, new_member


def race(n: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_fifty_parallel_redemptions_against_a_balance_for_ten(
    sessions: sessionmaker[Session], db: Session, shop
) -> None:
    member = new_member(db)
    give(db, member, 1000, "g")
    coffee_id = shop["rewards"]["Cà phê sữa đá"].id  # 100 points each

    def redeem(i: int) -> object:
        with sessions() as s:
            result = rewards.redeem(s, member.id, coffee_id, key=f"tap-{i}", now=NOW)
            s.commit()
            return result

    results = race(50, redeem)
    assert sum(isinstance(r, rewards.RedeemResult) for r in results) == 10
    assert sum(isinstance(r, InsufficientPoints) for r in results) == 40
    assert db.scalar(select(func.count()).select_from(Voucher)) == 10
    assert_consistent(db, member.id)  # expires the session's cached rows first
    assert db.get(Member, member.id).points_balance == 0


def test_twenty_parallel_deliveries_of_one_earn_write_one_entry(
    sessions: sessionmaker[Session], db: Session, shop
) -> None:
    member = new_member(db)

    def deliver(_: int) -> object:
        with sessions() as s:
            result = earning.earn(s, member.id, 250_000, key="pos:HD-77", rules=RULES, tz=TZ, now=NOW, bill_ref="HD-77")
            s.commit()
            return result

    results = race(20, deliver)
    assert all(isinstance(r, earning.EarnResult) for r in results), results
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert sum(not r.replayed for r in results) == 1  # type: ignore[union-attr]
    assert_consistent(db, member.id)  # expires the session's cached rows first
    assert db.get(Member, member.id).points_balance == 25


def test_twelve_parallel_bills_on_a_stamp_card_of_five_fill_it_twice(
    sessions: sessionmaker[Session], db: Session, shop
) -> None:
    """Twelve different bills at once, each delivered twice: twelve stamps, two full cards, two vouchers."""
    from models import MemberStampCard, Stamp, StampCard

    member = new_member(db)
    card = StampCard(name="5 tặng 1", stamps_needed=5, reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    db.add(card)
    db.commit()

    def deliver(i: int) -> object:
        with sessions() as s:
            result = earning.earn(s, member.id, 50_000, key=f"pos:B{i // 2}", rules=RULES, tz=TZ, now=NOW)
            s.commit()
            return result

    results = race(24, deliver)
    assert all(isinstance(r, earning.EarnResult) for r in results), results
    assert db.scalar(select(func.count()).select_from(Stamp)) == 12
    assert db.scalar(select(func.count()).select_from(Voucher).where(Voucher.source == "stamps")) == 2
    progress = db.scalars(select(MemberStampCard)).one()
    assert (progress.stamps, progress.cards_completed) == (2, 2)
