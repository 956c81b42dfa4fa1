"""The owner's week in real Chromium: dashboard, change the earn rate, a broadcast scheduled and one sent with
its live progress bar, a birthday list imported from Excel. Screenshots land in tests/artifacts/."""

import io
from datetime import datetime, timedelta

import pytest
from flask import Flask
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import earning
from loyalty.program import load_rules
from models import Broadcast, Member, utcnow
from tests.browser.conftest import ARTIFACTS
from tests.console_support import staffed_shop
from tests.helpers import ZaloFake, run_jobs
from tests.test_marketing import add_member

LAPTOP = {"width": 1280, "height": 900}


def birthday_workbook(path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Họ tên", "SĐT", "Ngày sinh"])
    sheet.append(["Nguyễn Thị Lan", "0912 345 678", "12/05/1990"])
    sheet.append(["Trần Minh", 987654321, datetime(1985, 11, 3)])
    sheet.append(["Sai số", "123", "01/01/1990"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_owner_console_flows(
    app: Flask, zalo: ZaloFake, session: Session, services, live_server: str, browser_page, tmp_path
) -> None:
    page = browser_page
    page.set_viewport_size(LAPTOP)
    shop = staffed_shop(session)
    zalo.accept_messages()
    for i, name in enumerate(["An", "Bình", "Chi"]):
        member = add_member(session, name, uid=f"u{i}", tier="Vàng" if i == 0 else None, shop=shop)
        rules, tz = load_rules(session), services.settings.tz
        earning.earn(session, member.id, 150_000 * (i + 1), key=f"b{i}", rules=rules, tz=tz, now=utcnow())
        session.commit()

    # log in, see the dashboard
    page.goto(f"{live_server}/admin/")
    page.fill("#username", "chu")
    page.fill("#password", "mat-khau-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/admin/")
    assert page.inner_text("#members-total") == "3"
    assert page.locator("svg.chart").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "console-1-dashboard.png"), full_page=True)

    # change the earn rate: 2 points per 10.000đ
    page.click("header nav a:text-is('Chương trình')")
    page.fill("#earn_points", "2")
    page.click("button.primary:has-text('Lưu')")
    page.wait_for_selector(".flash.success")
    assert page.inner_text(".flash.success") == "Đã lưu thiết lập chương trình (1 thay đổi)."
    session.expire_all()
    assert load_rules(session).earn_rate.points == 2
    page.screenshot(path=str(ARTIFACTS / "console-2-program.png"), full_page=True)

    # compose a broadcast to the Vàng tier, preview it, schedule it for tomorrow 09:30
    page.click("header nav a:text-is('Chiến dịch')")
    page.click("text=+ Tạo chiến dịch")
    page.fill("#name", "Ưu đãi hạng Vàng")
    page.fill("#text", "Chào {ten}, hạng {hang} được giảm 20% cuối tuần này!")
    page.check(f"input[name=tier_ids][value='{shop['tiers']['Vàng'].id}']")
    page.click("button:has-text('Xem trước người nhận')")
    page.wait_for_selector("#preview")
    assert page.inner_text("#audience-size") == "1"
    assert "Chào An, hạng Vàng được giảm 20% cuối tuần này!" in page.inner_text("#preview")
    page.screenshot(path=str(ARTIFACTS / "console-3-broadcast-preview.png"), full_page=True)
    tomorrow = (datetime.now(services.settings.tz) + timedelta(days=1)).strftime("%Y-%m-%dT09:30")
    page.check("input[name=when][value=later]")
    page.fill("#send_at", tomorrow)
    page.click("button:has-text('Lưu và lên lịch')")
    page.wait_for_selector(".flash.success")
    assert page.inner_text(".flash.success").startswith("Đã lên lịch gửi lúc 09:30")
    assert page.inner_text("#status") == "Đã lên lịch"

    # a broadcast to everyone, now: the progress bar follows the job, then the final report appears
    page.goto(f"{live_server}/admin/broadcasts/new")
    page.fill("#name", "Tri ân")
    page.fill("#text", "Cảm ơn {ten} đã ghé quán!")
    page.uncheck("input[name=promotional]")  # a thank-you is not a promotion: it may go out at night
    page.click("button:has-text('Lưu và lên lịch')")
    page.wait_for_selector("#progress-card[data-live=true]")
    page.screenshot(path=str(ARTIFACTS / "console-4-broadcast-sending.png"), full_page=True)
    run_jobs(app)
    page.wait_for_function("document.getElementById('status').textContent === 'Hoàn tất'", timeout=15_000)
    assert page.inner_text("#percent") == "100%"
    assert "Đã gửi" in page.inner_text("#counts")
    page.screenshot(path=str(ARTIFACTS / "console-5-broadcast-report.png"), full_page=True)
    assert session.scalar(select(Broadcast.status).where(Broadcast.name == "Tri ân")) == "done"
    assert len(zalo.sent_messages()) == 3

    # import the birthday list from Excel: preview with a per-row error, confirm, watch it finish
    workbook = tmp_path / "sinh-nhat.xlsx"
    birthday_workbook(workbook)
    page.click("header nav a:text-is('Nhập / xuất')")
    page.set_input_files("#file", str(workbook))
    page.click("button:has-text('Tải lên và kiểm tra')")
    page.wait_for_selector("#progress-card[data-live=true]")  # the job reads every row, not the web request
    run_jobs(app)
    page.wait_for_selector("#summary")
    assert page.inner_text("#n-create") == "2" and page.inner_text("#n-error") == "1"
    assert "Số điện thoại “123” không hợp lệ." in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "console-6-import-preview.png"), full_page=True)
    page.click("#confirm")
    page.wait_for_selector("#progress-card")
    run_jobs(app)
    page.wait_for_function("document.getElementById('status').textContent === 'Hoàn tất'", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "console-7-import-done.png"), full_page=True)
    imported = session.scalar(select(Member).where(Member.phone == "84987654321"))
    assert imported.name == "Trần Minh" and imported.birthday.isoformat() == "1985-11-03"

    # the dashboard now counts the imported members
    page.click("header nav a:text-is('Tổng quan')")
    assert page.inner_text("#members-total") == "5"

    # the same console on a phone: the header scrolls sideways, cards stack, nothing overflows the page
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "console-8-phone-dashboard.png"), full_page=True)
    page.goto(f"{live_server}/admin/members")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "console-9-phone-members.png"), full_page=True)
