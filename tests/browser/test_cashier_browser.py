"""A cashier at a phone browser: log in, scan a card, credit a bill, use a voucher; the member is told in Zalo."""

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.staff import create_staff
from loyalty import ledger, rewards
from loyalty.cards import card_token
from models import Member, Store
from tests.browser.conftest import ARTIFACTS
from tests.helpers import Chat, ZaloFake, run_jobs, seed_shop


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cashier_scans_credits_and_redeems(
    app: Flask, zalo: ZaloFake, session: Session, services, live_server: str, browser_page
) -> None:
    page = browser_page
    shop = seed_shop(session)
    q1 = session.get(Store, shop["stores"]["Q1"].id)
    q1.earn_points = None
    create_staff(
        session, username="thu-ngan", password="mat-khau-123", role="cashier", name="Thu ngân Hoa", store_id=q1.id
    )
    session.commit()
    chat = Chat(app, zalo)
    chat.follow()
    chat.share_info(name="Lan", phone="84912345678")
    member = session.scalars(select(Member)).one()
    now = datetime.now(UTC)
    ledger.adjust(session, member.id, 100, key="gift", reason="tặng", actor=ledger.SYSTEM, now=now, expires_at=None)
    voucher = rewards.redeem(session, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="r", now=now).voucher
    session.commit()
    token = card_token(member, services.settings.secret_key)
    before = len(zalo.sent_messages())

    page.goto(f"{live_server}/counter/")  # not logged in: sent to the login page
    page.fill("#username", "thu-ngan")
    page.fill("#password", "mat-khau-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/counter/")
    page.screenshot(path=str(ARTIFACTS / "cashier-1-counter.png"), full_page=True)

    page.fill("#q", token)  # a USB scanner types the QR's text and presses Enter
    page.press("#q", "Enter")
    page.wait_for_selector("#member-name")
    assert page.inner_text("#member-name") == "Lan"
    page.fill("#amount", "250.000")
    page.fill("#bill_ref", "HD123")
    page.click("#earn-submit")
    page.wait_for_selector(".flash.success")
    assert page.inner_text(".flash.success") == "+25 điểm — số dư 25 điểm."
    assert page.inner_text("#balance") == "25 điểm"
    page.screenshot(path=str(ARTIFACTS / "cashier-2-earned.png"), full_page=True)

    page.goto(f"{live_server}/counter/")
    page.fill("#code", f"{voucher.code[:4]}-{voucher.code[4:]}")
    page.press("#code", "Enter")
    page.wait_for_selector("#use-voucher")
    page.click("#use-voucher")
    page.wait_for_selector(".flash.success")
    assert page.inner_text(".flash.success") == "Đã dùng voucher. ✔"
    assert page.inner_text("#voucher-status").startswith("Đã dùng lúc")
    page.screenshot(path=str(ARTIFACTS / "cashier-3-voucher.png"), full_page=True)

    run_jobs(app)
    texts = [m["message"].get("text", "") for m in zalo.sent_messages()[before:]]
    assert texts[0] == "+25 điểm từ hóa đơn 250.000đ (HD123) — số dư 25 điểm."
    assert texts[1].startswith(f"Voucher {voucher.code[:4]}-{voucher.code[4:]} (Cà phê sữa đá) đã được sử dụng lúc")
