"""Creating many members at once (an imported list): codes drawn together, every guarantee of one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import loyalty.members
from loyalty.members import NewMember, create_members
from models import Member
from tests.loyalty.conftest import NOW, new_member


def test_many_members_get_distinct_free_codes_and_the_lowest_tier(
    db: Session, shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = new_member(db, "Đã có").code
    # The first draws collide with a member on file and with each other: they are drawn again.
    draws: Iterator[str] = iter([taken, "AAAAAA", "AAAAAA", *(f"B{i:05d}" for i in range(10))])
    monkeypatch.setattr(loyalty.members, "random_code", lambda length: next(draws))
    people = [NewMember(f"Khách {i}", f"8490000000{i}", date(1990, 1, 1 + i)) for i in range(4)]
    create_members(db, people, now=NOW, source="import")
    db.commit()
    created = db.scalars(select(Member).where(Member.source == "import").order_by(Member.phone)).all()
    assert [m.name for m in created] == ["Khách 0", "Khách 1", "Khách 2", "Khách 3"]
    codes = [m.code for m in created]
    assert len(set(codes)) == 4 and taken not in codes and "AAAAAA" in codes
    lowest = min(shop["tiers"].values(), key=lambda t: t.threshold)
    assert all((m.tier_id, m.tier_since) == (lowest.id, NOW) for m in created)
    assert all(m.points_balance == 0 and m.status == "active" for m in created)


def test_a_phone_taken_meanwhile_is_refused_like_one_at_a_time(db: Session, shop) -> None:
    new_member(db, "Chat", phone="84900000001")
    db.commit()
    people = [NewMember("A", "84900000002", None), NewMember("B", "84900000001", None)]
    with pytest.raises(IntegrityError):
        create_members(db, people, now=NOW, source="import")
