"""Loyalty fixtures: a Session on both databases and a small shop (tiers, rewards, stores)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from loyalty import ledger
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import Member
from tests.helpers import seed_shop
from tichdiem.extensions import Services

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Monday 10:00 in Vietnam
RULES = ProgramRules(referral_bonus_value=50)


@pytest.fixture
def sessions(services: Services) -> sessionmaker[Session]:
    return services.sessions


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def shop(db: Session) -> dict[str, object]:
    return seed_shop(db)


def new_member(session: Session, name: str = "Lan", **kwargs: object) -> Member:
    member = create_member(session, now=NOW, name=name, **kwargs)  # type: ignore[arg-type]
    session.commit()
    return member


def give(session: Session, member: Member, points: int, key: str, when: datetime = NOW) -> None:
    """Credit `points` directly (an adjustment), for tests that need a balance."""
    ledger.adjust(
        session,
        member.id,
        points,
        key=key,
        reason="test",
        actor=ledger.SYSTEM,
        now=when,
        expires_at=RULES.expiry_for(when),
    )
    session.commit()


def assert_consistent(session: Session, member_id: int) -> None:
    """The cached balance equals the sum of entries and the sum of unspent lots; never negative."""
    session.expire_all()
    member = session.get(Member, member_id)
    assert member is not None
    entries, lots = ledger.ledger_totals(session, member_id)
    assert member.points_balance == entries == lots >= 0
