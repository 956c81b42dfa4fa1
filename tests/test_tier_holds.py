"""Manual tier assignment (issue 18): the owner holds a member in a tier until a date, with a reason; the
monthly review leaves them alone; afterwards the points decide again. Audited; owners only (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.members import create_member
from loyalty.tiers import TierHoldError, hold_tier, release_holds, review_tiers
from models import AuditLog, Member, TierEvent
from tests.console_support import login, staffed_shop, text_of

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def tier_of(session: Session, member_id: int) -> str:
    session.expire_all()
    member = session.get(Member, member_id)
    assert member is not None
    return next(t.name for t in member_tiers(session) if t.id == member.tier_id)


def member_tiers(session: Session):  # type: ignore[no-untyped-def]
    from loyalty.tiers import list_tiers

    return list_tiers(session)


def test_a_held_tier_survives_the_review_and_falls_back_after_its_date(session: Session, shop) -> None:
    member = create_member(session, now=NOW, name="Lan")
    session.commit()
    gold = shop["tiers"]["Vàng"]
    event = hold_tier(
        session, member.id, gold.id, until=NOW + timedelta(days=30), reason="nhân viên", by="staff:1", now=NOW
    )
    session.commit()
    assert event is not None and event.reason == "manual" and tier_of(session, member.id) == "Vàng"
    assert review_tiers(session, window_start=None, now=NOW + timedelta(days=10)) == []  # held: left alone
    session.commit()
    assert tier_of(session, member.id) == "Vàng"
    assert release_holds(session, window_start=None, now=NOW + timedelta(days=10)) == []  # not yet
    (back,) = release_holds(session, window_start=None, now=NOW + timedelta(days=31))
    session.commit()
    assert back.reason == "hold_ended" and back.direction == "down" and tier_of(session, member.id) == "Thành viên"
    session.expire_all()
    assert session.get(Member, member.id).tier_held_until is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reason", "days", "message"),
    [("", 10, "Cần ghi lý do"), ("thử", -1, "Ngày kết thúc phải sau hôm nay")],
)
def test_a_hold_needs_a_reason_and_a_future_date(session: Session, shop, reason: str, days: int, message: str) -> None:  # type: ignore[no-untyped-def]
    member = create_member(session, now=NOW, name="Lan")
    with pytest.raises(TierHoldError, match=message):
        hold_tier(
            session,
            member.id,
            shop["tiers"]["Vàng"].id,
            until=NOW + timedelta(days=days),
            reason=reason,
            by="x",
            now=NOW,
        )


def test_the_owner_holds_a_tier_from_the_member_page(app: Flask, session: Session, shop) -> None:
    member = create_member(session, now=datetime.now(UTC), name="Lan")
    session.commit()
    gold = shop["tiers"]["Vàng"]
    until = (datetime.now(UTC) + timedelta(days=60)).date()
    owner = login(app, "chu")
    page = f"/admin/members/{member.id}"
    done = owner.post(
        f"{page}/tier",
        {"tier_id": str(gold.id), "until": until.isoformat(), "reason": "đối tác"},
        page=page,
        follow_redirects=True,
    )
    assert f"Đã giữ hạng Vàng đến hết {until:%d/%m/%Y}." in text_of(done)
    assert f"giữ đến {until:%d/%m/%Y}: đối tác" in text_of(done)
    assert tier_of(session, member.id) == "Vàng"
    log = session.scalar(select(AuditLog).where(AuditLog.action == "tier_hold"))
    assert log is not None and log.details == {"tier": "Vàng", "until": until.isoformat(), "reason": "đối tác"}
    assert session.scalar(select(TierEvent.reason)) == "manual"  # a tier-up: the chat congratulates as usual
    marketer = login(app, "mkt")
    refused = marketer.post(
        f"{page}/tier", {"tier_id": str(gold.id), "until": until.isoformat(), "reason": "x"}, page=page
    )
    assert refused.status_code == 403
