"""The owner's results page in real Chromium (issue 18), with a shop that has history: members joining over a
year, bills, a refund, walk-in bills, a voucher, a donation, a VIP sale and a broadcast.
Screenshots: tests/artifacts/results-*.png (laptop and phone)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from loyalty import charity, earning, ledger, rewards, vip
from loyalty.bills import record_walk_in
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import Broadcast, BroadcastStatus, Cause, OutboxMessage, VipPlan, utcnow
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_earn_spend_browser import LAPTOP, log_in
from tests.console_support import staffed_shop

RULES = ProgramRules(referral_bonus_kind="off")


def seed_history(session: Session, shop: dict) -> None:  # type: ignore[type-arg]
    from zoneinfo import ZoneInfo

    tz, now = ZoneInfo("Asia/Ho_Chi_Minh"), utcnow()
    members = []
    for i in range(24):
        joined = now - timedelta(days=15 * i + 3)
        members.append(create_member(session, now=joined, name=f"Khách {i}", zalo_user_id=f"u{i}"))
    session.flush()
    for i, m in enumerate(members):
        for n in range(i % 4):  # some buy again and again, some never
            when = m.joined_at + timedelta(days=1 + 9 * n)
            if when < now:
                earning.earn(session, m.id, 60_000 + 10_000 * n, key=f"h{i}:{n}", rules=RULES, tz=tz, now=when)
    for n in range(30):
        record_walk_in(session, 45_000 + n * 1_000, key=f"w{n}", now=now - timedelta(days=n * 3), store_id=None)
    ledger.adjust(session, members[1].id, 200, key="g", reason="tặng", actor=ledger.SYSTEM, now=now, expires_at=None)
    rewards.redeem(session, members[1].id, shop["rewards"]["Cà phê sữa đá"].id, key="v", now=now)
    cause = Cause(name="Áo ấm cho em", goal_points=500, match_pct=100)
    plan = VipPlan(name="VIP Vàng", price=299_000, duration_days=180, tier_id=shop["tiers"]["Vàng"].id)
    session.add_all([cause, plan])
    session.flush()
    charity.donate(session, members[1].id, cause.id, 20, key="d", now=now, today=now.astimezone(tz).date())
    vip.sell(session, members[2].id, plan.id, key="vip", now=now, by="staff:1")
    sent = now - timedelta(days=12)
    broadcast = Broadcast(name="Cuối tuần x2", text="…", status=BroadcastStatus.DONE, started_at=sent, created_at=sent)
    session.add(broadcast)
    session.flush()
    for i in range(0, 24, 2):
        session.add(
            OutboxMessage(
                key=f"bc:{broadcast.id}:{i}",
                zalo_user_id=f"u{i}",
                message={},
                status="sent",
                broadcast_id=broadcast.id,
                created_at=sent,
            )
        )
    session.commit()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_results_page_in_chromium(  # type: ignore[no-untyped-def]
    app: Flask, session: Session, live_server: str, browser_page
) -> None:
    page = browser_page
    shop = staffed_shop(session)
    seed_history(session, shop)
    log_in(page, live_server, "chu")
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_server}/admin/results/?days=365")
    assert "Thành viên chiếm doanh thu" in page.inner_text("#revenue-share")
    assert page.inner_text("#redemption-rate").endswith("%")
    assert "Cuối tuần x2" in page.inner_text("#messages")
    assert page.locator("#cohorts tbody tr").count() == 12
    assert page.locator("#liability svg rect").count() == 12
    page.screenshot(path=str(ARTIFACTS / "results-1-laptop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) <= 0
    page.screenshot(path=str(ARTIFACTS / "results-2-phone.png"), full_page=True)
    page.goto(f"{live_server}/admin/causes/")
    page.click("a:has-text('Trang công khai')")
    assert "Áo ấm cho em" in page.inner_text("#cause-report")
    page.screenshot(path=str(ARTIFACTS / "results-3-charity-report.png"), full_page=True)
