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
from models import Member, Reward, Store, Tier
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
    tiers = [
        Tier(name="Thành viên", threshold=0, benefits="Tích 1 điểm mỗi 10.000đ"),
        Tier(name="Bạc", threshold=500, benefits="Quà sinh nhật"),
        Tier(name="Vàng", threshold=1500, benefits="x1,5 điểm", earn_multiplier_pct=150),
        Tier(
            name="Kim cương",
            threshold=5000,
            benefits="x2 điểm, giảm 5% điểm đổi quà",
            earn_multiplier_pct=200,
            reward_discount_pct=5,
        ),
    ]
    rewards = [
        Reward(name="Cà phê sữa đá", points_cost=100, validity_days=30),
        Reward(name="Bánh ngọt", points_cost=60, validity_days=14, stock=2),
        Reward(name="Voucher 100.000đ", points_cost=1000, validity_days=60, per_member_limit=1),
    ]
    stores = [
        Store(code="Q1", name="Quận 1", kind="retail", earn_points=10, earn_unit_amount=100_000),
        Store(code="OUTLET", name="Outlet", kind="outlet", earn_points=5, earn_unit_amount=100_000),
    ]
    db.add_all([*tiers, *rewards, *stores])
    db.commit()
    return {
        "tiers": {t.name: t for t in tiers},
        "rewards": {r.name: r for r in rewards},
        "stores": {s.code: s for s in stores},
    }


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
