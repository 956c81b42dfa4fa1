from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import history
from loyalty import ledger
from loyalty.errors import AlreadyReversed, InsufficientPoints, InvalidAmount, NotReversible
from models import EntryKind, LedgerEntry, Member
from models.loyalty import AppendOnlyViolation
from tests.loyalty.conftest import NOW, RULES, TZ, assert_consistent, give, new_member


def spend(session: Session, member: Member, points: int, key: str) -> LedgerEntry:
    entry, _ = ledger.post_debit(
        session, member.id, ledger.Posting(kind=EntryKind.REDEEM, points=points, key=key, reason="đổi quà"), now=NOW
    )
    session.commit()
    return entry


def test_same_key_twice_writes_one_entry(db: Session) -> None:
    member = new_member(db)
    give(db, member, 100, "k1")
    give(db, member, 100, "k1")
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert db.get(Member, member.id).points_balance == 100


def test_replay_returns_the_first_result(db: Session) -> None:
    member = new_member(db)
    posting = ledger.Posting(kind=EntryKind.ADJUST, points=30, key="same", reason="x")
    first, replayed1 = ledger.post_credit(db, member.id, posting, now=NOW, expires_at=None)
    db.commit()
    again, replayed2 = ledger.post_credit(
        db,
        member.id,
        ledger.Posting(kind=EntryKind.ADJUST, points=99, key="same", reason="y"),
        now=NOW,
        expires_at=None,
    )
    assert (replayed1, replayed2) == (False, True)
    assert again.id == first.id and again.points == 30


def test_spending_never_goes_below_zero(db: Session) -> None:
    member = new_member(db)
    give(db, member, 50, "k1")
    with pytest.raises(InsufficientPoints) as raised:
        spend(db, member, 51, "s1")
    assert (raised.value.balance, raised.value.needed) == (50, 51)
    db.rollback()
    spend(db, member, 50, "s2")
    assert_consistent(db, member.id)
    assert db.get(Member, member.id).points_balance == 0


def test_spending_takes_soonest_expiring_points_first(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "old", when=NOW - timedelta(days=300))
    give(db, member, 10, "new", when=NOW)
    spend(db, member, 15, "s")
    assert ledger.expiring(db, member.id) == [((NOW + timedelta(days=365)).date(), 5)]


def test_reverse_of_a_redemption_restores_the_same_lots(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "old", when=NOW - timedelta(days=300))
    give(db, member, 10, "new", when=NOW)
    before = ledger.expiring(db, member.id)
    entry = spend(db, member, 15, "s")
    ledger.reverse(db, entry.id, key="undo", now=NOW)
    db.commit()
    assert ledger.expiring(db, member.id) == before
    assert db.get(Member, member.id).points_balance == 20
    assert_consistent(db, member.id)


def test_an_entry_is_reversed_once_and_reverse_of_reverse_is_refused(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "g")
    entry = spend(db, member, 10, "s")
    reversal, _ = ledger.reverse(db, entry.id, key="r1", now=NOW)
    db.commit()
    with pytest.raises(AlreadyReversed):
        ledger.reverse(db, entry.id, key="r2", now=NOW)
    db.rollback()
    again, replayed = ledger.reverse(db, entry.id, key="r1", now=NOW)  # the same request, retried
    assert replayed and again.id == reversal.id
    with pytest.raises(NotReversible):
        ledger.reverse(db, reversal.id, key="r3", now=NOW)


def test_expire_and_adjust_entries_are_not_reversible(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "g")
    adjustment = db.scalars(select(LedgerEntry)).one()
    with pytest.raises(NotReversible):
        ledger.reverse(db, adjustment.id, key="r", now=NOW)


def test_expiry_takes_only_what_is_left_of_due_lots(db: Session) -> None:
    member = new_member(db)
    give(db, member, 100, "old", when=NOW - timedelta(days=400))  # expired 35 days ago
    give(db, member, 40, "new", when=NOW)
    spend(db, member, 30, "s")  # taken from the old lot
    lot_ids = ledger.due_lot_ids(db, NOW)
    assert len(lot_ids) == 1
    entry = ledger.expire_lot(db, lot_ids[0], now=NOW)
    db.commit()
    assert entry is not None and entry.points == -70 and entry.kind == EntryKind.EXPIRE
    assert ledger.expire_lot(db, lot_ids[0], now=NOW) is None  # a second run does nothing
    assert db.get(Member, member.id).points_balance == 40
    assert_consistent(db, member.id)


def test_statement_shows_what_expires_when(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "a", when=NOW - timedelta(days=350))
    give(db, member, 20, "b", when=NOW - timedelta(days=100))
    soon = ledger.expiring(db, member.id, until=NOW + timedelta(days=30))
    assert soon == [((NOW - timedelta(days=350) + timedelta(days=365)).date(), 10)]
    assert [p for _, p in ledger.expiring(db, member.id)] == [10, 20]


def test_points_that_never_expire(db: Session) -> None:
    member = new_member(db)
    ledger.adjust(db, member.id, 10, key="k", reason="quà", actor=ledger.SYSTEM, now=NOW, expires_at=None)
    db.commit()
    assert ledger.due_lot_ids(db, NOW + timedelta(days=5000)) == []
    assert ledger.expiring(db, member.id) == []


def test_adjustment_needs_a_reason_and_points(db: Session) -> None:
    member = new_member(db)
    with pytest.raises(InvalidAmount):
        ledger.adjust(db, member.id, 10, key="k", reason="  ", actor=ledger.SYSTEM, now=NOW, expires_at=None)
    with pytest.raises(InvalidAmount):
        ledger.adjust(db, member.id, 0, key="k", reason="x", actor=ledger.SYSTEM, now=NOW, expires_at=None)


def test_negative_adjustment(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "g")
    ledger.adjust(
        db,
        member.id,
        -4,
        key="fix",
        reason="nhập nhầm",
        actor=ledger.Actor("staff", "owner-1"),
        now=NOW,
        expires_at=None,
    )
    db.commit()
    entry = ledger.history(db, member.id, limit=1)[0]
    assert (entry.points, entry.actor_type, entry.actor_id, entry.balance_after) == (-4, "staff", "owner-1", 6)


def test_entries_are_append_only(db: Session) -> None:
    member = new_member(db)
    give(db, member, 10, "g")
    entry = db.scalars(select(LedgerEntry)).one()
    entry.points = 1000
    with pytest.raises(AppendOnlyViolation):
        db.flush()
    db.rollback()
    db.delete(db.scalars(select(LedgerEntry)).one())
    with pytest.raises(AppendOnlyViolation):
        db.flush()


def test_history_reads_like_a_person_wrote_it(db: Session) -> None:
    member = new_member(db)
    posting = ledger.Posting(
        kind=EntryKind.EARN, points=25, key="e1", source_ref="HD123", bill_amount=250_000, qualifying=True
    )
    ledger.post_credit(db, member.id, posting, now=NOW.replace(month=11, day=12), expires_at=None)
    ledger.post_credit(
        db,
        member.id,
        ledger.Posting(kind=EntryKind.EARN, points=1250, key="e2", bill_amount=12_500_000, qualifying=True),
        now=NOW,
        expires_at=None,
    )
    spend(db, member, 100, "s1")
    lines = [history.describe(e, TZ) for e in ledger.history(db, member.id)]
    assert lines == [
        "−100 điểm — đổi quà — 23/11",
        "+1.250 điểm — mua hàng 12.500.000đ — 23/11",
        "+25 điểm — hóa đơn HD123 — 12/11",
    ]


def test_history_is_limited_and_newest_first(db: Session) -> None:
    member = new_member(db)
    for i in range(15):
        give(db, member, i + 1, f"k{i}")
    entries = ledger.history(db, member.id, limit=10)
    assert [e.points for e in entries] == list(range(15, 5, -1))


def test_rules_expiry_is_n_months_later() -> None:
    from datetime import UTC, datetime

    assert RULES.expiry_for(datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2027, 1, 31, tzinfo=UTC)
    from loyalty.program import add_months

    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 3, 15, tzinfo=UTC), -12) == datetime(2025, 3, 15, tzinfo=UTC)
