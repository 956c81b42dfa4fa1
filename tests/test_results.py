"""The owner's results page (issue 18): visits and revenue against every bill, repeat visits, points and their
liability, members, each message's effect against similar members, and cohorts. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.admin import results
from console.staff import create_api_key, create_staff
from loyalty import earning, ledger, rewards
from loyalty.bills import record_walk_in
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import Broadcast, BroadcastResult, BroadcastStatus, Member, OutboxMessage, utcnow
from tests.console_support import login, text_of
from tests.helpers import seed_shop

TZ = results.ZoneInfo("Asia/Ho_Chi_Minh")
RULES = ProgramRules(referral_bonus_kind="off")


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    create_staff(session, username="thu-ngan", password="mat-khau-123", role="cashier")
    session.commit()
    return shop


def member(session: Session, name: str, joined: datetime, uid: str | None = None) -> Member:
    m = create_member(session, now=joined, name=name, zalo_user_id=uid)
    session.commit()
    return m


def buy(session: Session, m: Member, amount: int, when: datetime, key: str) -> earning.EarnResult:
    result = earning.earn(session, m.id, amount, key=key, rules=RULES, tz=TZ, now=when)
    session.commit()
    return result


def test_the_figures_add_up(session: Session, shop: dict) -> None:
    now = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    an = member(session, "An", now - timedelta(days=200))
    binh = member(session, "Bình", now - timedelta(days=20))
    member(session, "Chi", now - timedelta(days=10))  # never bought
    buy(session, an, 100_000, now - timedelta(days=30), "a1")
    buy(session, an, 200_000, now - timedelta(days=10), "a2")  # back after 20 days
    refunded = buy(session, binh, 500_000, now - timedelta(days=5), "b1")
    assert refunded.entry is not None
    ledger.reverse(session, refunded.entry.id, key="r1", now=now, reason="hoàn")
    buy(session, binh, 50_000, now - timedelta(days=4), "b2")
    record_walk_in(session, 350_000, key="w1", now=now - timedelta(days=3), store_id=None)
    old = member(session, "Xưa", now - timedelta(days=300))
    buy(session, old, 80_000, now - timedelta(days=200), "o1")  # lapsed
    coffee = shop["rewards"]["Cà phê sữa đá"]
    ledger.adjust(session, an.id, 100, key="g", reason="tặng", actor=ledger.SYSTEM, now=now, expires_at=None)
    rewards.redeem(session, an.id, coffee.id, key="v1", now=now - timedelta(days=1))
    session.commit()

    period = results.period_from({"days": "90"}, now, TZ)
    r = results.results(session, period, now, TZ)
    v = r.visits
    assert (v.member_bills, v.member_revenue, v.members_buying, v.returning) == (3, 350_000, 2, 1)
    assert v.days_between == pytest.approx(20, abs=0.01)
    assert (v.walk_in_bills, v.walk_in_revenue, v.member_share_pct) == (1, 350_000, 50)
    assert v.repeat_pct == 50 and v.member_average == 116_666 and v.walk_in_average == 350_000
    p = r.points
    assert (p.issued, p.redeemed) == (10 + 20 + 5, 100)  # Bình's refunded 50 points were not issued
    assert p.liability[-1][1] == sum(m.points_balance for m in session.query(Member)) * 1_000
    assert len(p.liability) == 12 and p.liability[-1][0] == "11/2026"
    m = r.members
    assert (m.total, m.new, m.active, m.lapsed, m.never_bought) == (4, 2, 2, 1, 1)
    assert m.new_per_month[-1] == ("11/2026", 2)
    november = r.cohorts[-1]
    assert (november.month, november.members, november.retained) == ("11/2026", 2, [1])  # Bình bought
    assert r.cohorts[0].month == "12/2025" and r.cohorts[5].month == "05/2026"


def test_a_broadcast_is_compared_with_similar_members_who_did_not_get_it(session: Session, shop: dict) -> None:
    now = utcnow()
    sent = now - timedelta(days=8)
    people = [member(session, f"M{i}", now - timedelta(days=100), uid=f"u{i}") for i in range(6)]
    for i, m in enumerate(people):  # all bought in the 90 days before
        buy(session, m, 50_000, sent - timedelta(days=10), f"before{i}")
    broadcast = Broadcast(
        name="Cuối tuần x2", text="…", status=BroadcastStatus.DONE, started_at=sent, audience=3, created_at=sent
    )
    session.add(broadcast)
    session.flush()
    for i in range(3):  # the first three got it
        session.add(
            OutboxMessage(
                key=f"bc:{broadcast.id}:{i}",
                zalo_user_id=f"u{i}",
                message={"text": "…"},
                status="sent",
                broadcast_id=broadcast.id,
                created_at=sent,
            )
        )
    session.commit()
    buy(session, people[0], 70_000, sent + timedelta(days=2), "after0")
    first = people[0].id  # the message also reminded her to use her points
    ledger.adjust(session, first, 100, key="g0", reason="tặng", actor=ledger.SYSTEM, now=sent, expires_at=None)
    rewards.redeem(session, first, shop["rewards"]["Cà phê sữa đá"].id, key="r0", now=sent + timedelta(days=3))
    session.commit()
    buy(session, people[1], 70_000, sent + timedelta(days=3), "after1")
    buy(session, people[4], 70_000, sent + timedelta(days=1), "after4")
    r = results.results(session, results.period_from({"days": "30"}, now, TZ), now, TZ)
    (shown,) = [x for x in r.messages if x.name == "Cuối tuần x2"]
    assert (shown.recipients, shown.reached, shown.bought, shown.points_spent) == (3, 3, 2, 100)
    assert shown.compared == (3, 2) and shown.control == (3, 1)
    # Its 7-day window closed: the figures are kept, and read from there next time (a later purchase is not
    # the broadcast's doing any more).
    kept = session.scalars(select(BroadcastResult)).one()
    assert kept.figures == {
        "recipients": 3,
        "reached": 3,
        "bought": 2,
        "points_spent": 100,
        "compared": [3, 2],
        "control": [3, 1],
    }
    buy(session, people[2], 70_000, now, "late")
    again = results.results(session, results.period_from({"days": "30"}, now, TZ), now, TZ)
    assert [x for x in again.messages if x.name == "Cuối tuần x2"][0].bought == 2


def test_the_counter_and_the_pos_record_walk_in_bills_once(app: Flask, session: Session, shop: dict) -> None:
    cashier = login(app, "thu-ngan")
    form = {"walk_in_amount": "120.000", "walk_in_ref": "HD9", "op": "op-1"}
    done = cashier.post("/counter/bills", form, follow_redirects=True)
    assert "Đã ghi hóa đơn khách lẻ 120.000đ." in text_of(done)
    cashier.post("/counter/bills", form, follow_redirects=True)  # a double click
    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None).secret
    session.commit()
    client = app.test_client()
    headers = {"X-Api-Key": key, "Idempotency-Key": "b-1"}
    assert client.post("/api/v1/bills", json={"amount": 90_000}, headers=headers).status_code == 201
    assert client.post("/api/v1/bills", json={"amount": 90_000}, headers=headers).status_code == 200
    assert client.post("/api/v1/bills", json={"amount": 1}, headers=headers).status_code == 409
    assert (
        client.post("/api/v1/bills", json={"amount": 0}, headers={**headers, "Idempotency-Key": "b-2"}).status_code
        == 422
    )
    now = utcnow()
    v = results.visits(session, results.period_from({"days": "30"}, now, TZ))
    assert (v.walk_in_bills, v.walk_in_revenue) == (2, 210_000)
    q1 = results.visits(session, results.period_from({"days": "30", "store": str(shop["stores"]["Q1"].id)}, now, TZ))
    assert (q1.walk_in_bills, q1.walk_in_revenue) == (1, 90_000)


def test_the_results_page_shows_each_section(app: Flask, session: Session, shop: dict) -> None:
    now = utcnow()
    an = member(session, "An", now - timedelta(days=40))
    buy(session, an, 100_000, now - timedelta(days=2), "a1")
    owner = login(app, "chu")
    page = text_of(owner.get("/admin/results/?days=365"))
    for section in ("revenue-share", "repeat", "points", "liability", "member-counts", "messages", "cohorts"):
        assert f'id="{section}"' in page
    assert "365 ngày qua" in page and "Thành viên chiếm doanh thu" in page
    assert login(app, "thu-ngan").get("/admin/results/").status_code in (302, 403)
