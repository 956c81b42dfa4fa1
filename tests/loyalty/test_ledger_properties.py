"""Hypothesis: random sequences of ledger operations keep the invariants."""

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from loyalty import ledger
from loyalty.errors import InsufficientPoints, LoyaltyError, NotReversible
from models import EntryKind, LedgerEntry
from tests.loyalty.conftest import NOW, RULES, assert_consistent, new_member

KEYS = st.sampled_from([f"k{i}" for i in range(6)])  # a small pool, so keys repeat
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.integers(1, 500), KEYS),
        st.tuples(st.just("debit"), st.integers(1, 500), KEYS),
        st.tuples(st.just("reverse"), st.integers(0, 20), KEYS),
        st.tuples(st.just("expire"), st.integers(1, 800), KEYS),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_invariants_hold_for_any_sequence(sessions: sessionmaker[Session], ops: list[tuple[str, int, str]]) -> None:
    run = uuid.uuid4().hex[:8]  # examples share the database: keys are per example
    with sessions() as db:
        member = new_member(db)
        now = NOW
        seen_keys: set[str] = set()
        for op, n, key in ops:
            key = f"{run}:{op}:{key}"
            try:
                apply(db, member.id, op, n, key, now)
                db.commit()
            except (InsufficientPoints, NotReversible) as exc:
                db.rollback()
                if isinstance(exc, NotReversible):
                    assert_reverse_refusal_is_legit(db, member.id, n)
            except LoyaltyError:
                db.rollback()
                raise
            if op == "expire":
                now += timedelta(days=n)
            seen_keys.add(key)
            assert_consistent(db, member.id)
        keyed = db.scalar(
            select(func.count(func.distinct(LedgerEntry.idempotency_key))).where(LedgerEntry.member_id == member.id)
        )
        total = db.scalar(select(func.count()).where(LedgerEntry.member_id == member.id))
        assert keyed == total  # every key wrote at most one entry


def apply(db: Session, member_id: int, op: str, n: int, key: str, now) -> None:
    if op == "credit":
        ledger.post_credit(
            db,
            member_id,
            ledger.Posting(kind=EntryKind.EARN, points=n, key=key, qualifying=True),
            now=now,
            expires_at=RULES.expiry_for(now),
        )
    elif op == "debit":
        ledger.post_debit(db, member_id, ledger.Posting(kind=EntryKind.REDEEM, points=n, key=key), now=now)
    elif op == "reverse":
        entries = ledger.history(db, member_id, limit=100)
        if entries:
            ledger.reverse(db, entries[n % len(entries)].id, key=key, now=now)
    elif op == "expire":
        later = now + timedelta(days=n)
        for lot_id in ledger.due_lot_ids(db, later):
            ledger.expire_lot(db, lot_id, now=later)


def assert_reverse_refusal_is_legit(db: Session, member_id: int, n: int) -> None:
    entries = ledger.history(db, member_id, limit=100)
    target = entries[n % len(entries)]
    reversed_already = db.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == target.id))
    assert target.kind in (EntryKind.REVERSE, EntryKind.EXPIRE, EntryKind.ADJUST) or reversed_already
