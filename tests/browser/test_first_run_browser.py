"""A new shop's first afternoon in a real browser: a fresh production database -> the setup page -> a preset
and a store -> "Kết nối Zalo OA" through the emulator's permission page -> the checklist turns green as a
customer's message arrives -> the dashboard and tiers. Screenshots go to tests/artifacts/first-run-*.png."""

from __future__ import annotations

import time

import requests

from tests.browser.conftest import ARTIFACTS
from tests.conftest import Demo


def test_first_run_setup_and_connect_in_chromium(fresh_install: Demo, browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base = browser_page, fresh_install.base
    page.goto(f"{base}/")
    page.wait_for_selector("#setup")  # no owner yet: the setup page, opened on the server's own machine
    page.fill("#shop_name", "Spa Hoa Sen")
    page.fill("#name", "Chị Sen")
    page.fill("#username", "sen")
    page.fill("#password", "hoa-sen-2026")
    page.fill("#password2", "hoa-sen-2026")
    page.check("#preset-spa")
    page.fill("#store_code_0", "HS1")
    page.fill("#store_name_0", "Spa Hoa Sen Quận 1")
    page.screenshot(path=str(ARTIFACTS / "first-run-1-setup.png"), full_page=True)
    page.click("#setup-submit")

    page.wait_for_selector("#connect")
    assert "Đã tạo cửa hàng Spa Hoa Sen" in page.inner_text(".flash.success")
    assert "todo" in (page.get_attribute("#step-token", "class") or "")
    page.screenshot(path=str(ARTIFACTS / "first-run-2-checklist.png"), full_page=True)
    page.click("#connect-oa")
    page.wait_for_selector("#allow")  # the emulator playing Zalo's OA permission page
    page.screenshot(path=str(ARTIFACTS / "first-run-3-zalo-permission.png"))
    page.click("#allow")
    page.wait_for_selector("#connect")
    assert "Đã kết nối Zalo OA" in page.inner_text("main")
    assert "done" in (page.get_attribute("#step-token", "class") or "")
    fresh_install.pump()  # the follower sync the connection started

    # A customer messages the OA: the checklist's "event" step turns green by itself (the page polls).
    assert "todo" in (page.get_attribute("#step-event", "class") or "")
    user = fresh_install.customer("Trần Thị Cúc", "0912345678")
    for action in ({"action": "follow"}, {"action": "text", "text": "xin chào"}):
        answer = requests.post(f"{base}/_emulator/api/act", json={"user_id": user, **action}, timeout=10)
        assert answer.json()["webhook_status"] == 200
    fresh_install.pump()
    deadline = time.monotonic() + 15
    while "done" not in (page.get_attribute("#step-event", "class") or "") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "done" in (page.get_attribute("#step-event", "class") or "")
    page.screenshot(path=str(ARTIFACTS / "first-run-4-connected.png"), full_page=True)

    page.goto(f"{base}/admin/tiers")  # the preset's tiers, in the editable table
    values = page.eval_on_selector_all("main input", "inputs => inputs.map(i => i.value)")
    assert {"Thành viên", "Bạc", "Vàng", "Kim cương"} <= set(values)
    page.goto(f"{base}/admin/")
    page.screenshot(path=str(ARTIFACTS / "first-run-5-dashboard.png"), full_page=True)
    replies = [m.get("text", "") for m in fresh_install.state.transcripts[user] if m.get("from") == "oa"]
    assert any("Spa Hoa Sen" in text for text in replies)  # the name typed at setup, in the chat
