"""Issue 17's console parts in real Chromium: the owner switches paying with points on, the cashier takes
points off a bill, the marketer groups members and sends the group a gift.
Screenshots: tests/artifacts/earn-spend-*.png."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.program import load_rules
from models import Broadcast, LedgerEntry, Member, Voucher, utcnow
from tests.browser.conftest import ARTIFACTS
from tests.console_support import staffed_shop
from tests.helpers import ZaloFake, run_jobs
from tests.test_marketing import add_member

LAPTOP = {"width": 1280, "height": 900}


def log_in(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.context.clear_cookies()
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", "mat-khau-123")
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pay_with_points_groups_and_a_gift_in_chromium(  # type: ignore[no-untyped-def]
    app: Flask, zalo: ZaloFake, session: Session, live_server: str, browser_page
) -> None:
    page = browser_page
    page.set_viewport_size(LAPTOP)
    shop = staffed_shop(session)
    zalo.accept_messages()
    an = add_member(session, "An", uid="u1")
    add_member(session, "Bình", uid="u2")
    ledger.adjust(session, an.id, 300, key="gift", reason="tặng", actor=ledger.SYSTEM, now=utcnow(), expires_at=None)
    session.commit()

    # The owner switches paying with points on.
    log_in(page, live_server, "chu")
    page.goto(f"{live_server}/admin/program")
    page.check("input[name=points_payment_enabled]")
    page.fill("#points_payment_max_pct", "40")
    page.click("button.primary:has-text('Lưu')")
    page.wait_for_selector(".flash.success")
    session.expire_all()
    assert load_rules(session).points_payment_enabled and load_rules(session).points_payment_max_pct == 40

    # The cashier takes 60 points off a 250.000đ bill.
    log_in(page, live_server, "thu-ngan")
    page.goto(f"{live_server}/counter/members/{an.id}")
    page.fill("#pay_amount", "250000")
    page.fill("#points", "60")
    page.fill("#pay_bill_ref", "HD77")
    page.click("#pay-submit")
    page.wait_for_selector(".flash.success")
    assert "−60 điểm = 60.000đ trừ vào hóa đơn; khách trả 190.000đ." in page.inner_text(".flash.success")
    page.screenshot(path=str(ARTIFACTS / "earn-spend-1-pay-with-points.png"), full_page=True)
    assert session.scalar(select(LedgerEntry.source_ref).where(LedgerEntry.kind == "pay")) == "HD77"

    # The marketer puts An in a group and sends that group a gift.
    log_in(page, live_server, "mkt")
    page.goto(f"{live_server}/admin/members")
    page.check(f"input[name=member_ids][value='{an.id}']")
    page.fill("#new-group", "Khách quen")
    page.click("#add-to-group")
    page.wait_for_selector(".flash.success")
    assert "Đã thêm 1 thành viên vào nhóm Khách quen." in page.inner_text(".flash.success")
    assert re.search(r"Khách quen", page.inner_text("#group"))
    page.goto(f"{live_server}/admin/broadcasts/new")
    page.fill("#name", "Quà khách quen")
    page.fill("#text", "Cảm ơn {ten} đã ghé quán!")
    page.select_option("#reward_id", str(shop["rewards"]["Cà phê sữa đá"].id))
    page.select_option("#group", "Khách quen")
    page.click("button:has-text('Xem trước người nhận')")
    page.wait_for_selector("#preview")
    assert page.inner_text("#audience-size") == "1"
    assert "Quà của bạn: Cà phê sữa đá — mã ABCD-EFGH" in page.inner_text("#preview")
    page.screenshot(path=str(ARTIFACTS / "earn-spend-2-gift-preview.png"), full_page=True)
    page.click("button:has-text('Lưu và lên lịch')")
    page.wait_for_selector("#progress-card")
    run_jobs(app)
    page.reload()
    assert page.inner_text("#gifts-issued") == "1" and page.inner_text("#gifts-used") == "0"
    page.screenshot(path=str(ARTIFACTS / "earn-spend-3-gift-report.png"), full_page=True)
    voucher = session.scalars(select(Voucher)).one()
    assert voucher.member_id == an.id and voucher.source == "campaign"
    assert session.scalar(select(Broadcast.reward_id)) == shop["rewards"]["Cà phê sữa đá"].id
    session.expire_all()
    assert session.get(Member, an.id).points_balance == 240  # type: ignore[union-attr]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_stamp_card_from_the_console_to_the_counter_in_chromium(  # type: ignore[no-untyped-def]
    app: Flask, zalo: ZaloFake, session: Session, live_server: str, browser_page
) -> None:
    """The marketer starts "Mua 3 ly tặng 1", the cashier stamps it three times with the points, the card page
    and the dashboard show the full card and its voucher. Screenshots: earn-spend-4..6."""
    from models import StampCard

    page = browser_page
    page.set_viewport_size(LAPTOP)
    shop = staffed_shop(session)
    zalo.accept_messages()
    zalo.accept_uploads()
    an = add_member(session, "An", uid="u1")
    session.commit()

    log_in(page, live_server, "mkt")
    page.goto(f"{live_server}/admin/stamp-cards/")
    page.click("a.button:has-text('Thêm thẻ tem')")
    page.fill("#name", "Mua 3 ly tặng 1")
    page.fill("#stamps_needed", "3")
    page.select_option("#reward_id", str(shop["rewards"]["Cà phê sữa đá"].id))
    page.fill("#min_bill_amount", "30000")
    page.screenshot(path=str(ARTIFACTS / "earn-spend-4-stamp-card-form.png"), full_page=True)
    page.click("button.primary:has-text('Lưu')")
    page.wait_for_selector(".flash.success")
    assert "Mua 3 ly tặng 1" in page.inner_text("#stamp-cards")
    card = session.scalars(select(StampCard)).one()
    assert (card.stamps_needed, card.min_bill_amount) == (3, 30_000)

    log_in(page, live_server, "thu-ngan")
    for _ in range(3):
        page.goto(f"{live_server}/counter/members/{an.id}")
        page.fill("#amount", "45000")
        page.click("#earn-submit")
        page.wait_for_selector(".flash.success")
    flashes = page.inner_text("main")
    assert "Thẻ “Mua 3 ly tặng 1” đã đủ tem: khách được voucher" in flashes
    assert "Thẻ tem “Mua 3 ly tặng 1”: 0/3 tem" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "earn-spend-5-stamp-at-the-counter.png"), full_page=True)
    voucher = session.scalars(select(Voucher)).one()
    assert voucher.member_id == an.id and voucher.source == "stamps"

    log_in(page, live_server, "mkt")
    page.goto(f"{live_server}/admin/")
    assert re.search(r"Mua 3 ly tặng 1\s+0\s+3\s+1\s+0", page.inner_text("#stamp-figures"))
    page.screenshot(path=str(ARTIFACTS / "earn-spend-6-stamp-figures.png"), full_page=True)
