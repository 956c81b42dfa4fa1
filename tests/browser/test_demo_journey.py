"""The whole demo in a real browser: follow -> register -> card -> earn at the counter by scanning the card
-> ask the balance -> redeem a voucher -> the cashier uses it. Screenshots go to tests/artifacts/."""

import io
import re
import time

import zxingcpp
from PIL import Image

from tests.browser.conftest import ARTIFACTS
from tests.conftest import Demo


def pump_until(demo: Demo, page, selector: str, text: str | None = None, timeout: float = 15) -> str:  # type: ignore[no-untyped-def]
    """Run queued jobs until the chat page shows `selector` (containing `text`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        demo.pump()
        nodes = page.locator(selector)
        for i in range(nodes.count()):
            content = nodes.nth(i).inner_text()
            if text is None or text in content:
                return content
        time.sleep(0.25)
    raise AssertionError(f"{selector} with {text!r} never appeared")


def test_demo_journey_in_chromium(demo: Demo, browser_page) -> None:
    chat = browser_page
    chat.set_viewport_size({"width": 1100, "height": 850})
    chat.goto(f"{demo.base}/_emulator/")
    chat.fill("#new-customer input[name=name]", "Võ Thị Lan")
    chat.fill("#new-customer input[name=phone]", "0911222333")
    chat.click("#new-customer button")
    chat.wait_for_selector("#who:has-text('Võ Thị Lan')")
    chat.click("#follow")
    pump_until(demo, chat, ".bubble.oa", "Chào mừng bạn đến với Cà phê Demo!")
    chat.click("button.share")  # the request_user_info card's "Chia sẻ thông tin"
    pump_until(demo, chat, ".bubble.oa", "Đăng ký thành công!")
    pump_until(demo, chat, ".bubble.oa[data-kind=image]")
    chat.screenshot(path=str(ARTIFACTS / "demo-1-registered.png"))

    # The cashier scans the card: decode the QR of the image the customer received.
    card_src = chat.locator(".bubble.oa[data-kind=image] img").last.get_attribute("src")
    png = chat.request.get(f"{demo.base}{card_src}").body()
    (qr,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert qr.text.startswith("TD-")

    counter = chat.context.new_page()
    counter.goto(f"{demo.base}/counter/")
    counter.fill("#username", "thungan")
    counter.fill("#password", "demo1234")
    counter.click("button[type=submit]")
    counter.fill("#q", qr.text)
    counter.press("#q", "Enter")
    counter.wait_for_selector("#member-name:has-text('Võ Thị Lan')")
    counter.fill("#amount", "600000")
    counter.click("#earn-submit")
    flash = counter.inner_text(".flash.success")
    earned, balance = map(int, re.fullmatch(r"\+(\d+) điểm — số dư (\d+) điểm\.", flash).groups())
    assert earned == balance and earned >= 60  # 10 points per 100.000đ at Q1 (x2 on Saturdays)
    counter.screenshot(path=str(ARTIFACTS / "demo-2-counter-earned.png"), full_page=True)
    pump_until(demo, chat, ".bubble.oa", f"+{earned} điểm từ hóa đơn 600.000đ — số dư {balance} điểm.")

    chat.fill("#text", "điểm")
    chat.press("#text", "Enter")
    pump_until(demo, chat, ".bubble.oa", f"Bạn đang có {balance} điểm.")
    chat.fill("#text", "quà")
    chat.press("#text", "Enter")
    gifts = pump_until(demo, chat, ".bubble.oa", "Quà bạn đổi được ngay")
    number = re.search(r"(\d+)\. Cà phê sữa đá — 50 điểm", gifts).group(1)
    chat.fill("#text", f"đổi {number}")
    chat.press("#text", "Enter")
    pump_until(demo, chat, ".bubble.oa", "Trả lời CÓ để đổi 50 điểm lấy Cà phê sữa đá")
    chat.locator(".bubble.oa .buttons button", has_text="CÓ").last.click()
    done = pump_until(demo, chat, ".bubble.oa", "Đổi quà thành công!")
    code = re.search(r"Mã voucher: ([A-Z0-9]{4}-[A-Z0-9]{4})", done).group(1)
    chat.screenshot(path=str(ARTIFACTS / "demo-3-redeemed.png"))

    counter.goto(f"{demo.base}/counter/")
    counter.fill("#code", code)
    counter.press("#code", "Enter")
    counter.click("#use-voucher")
    assert counter.inner_text(".flash.success") == "Đã dùng voucher. ✔"
    pump_until(demo, chat, ".bubble.oa", f"Voucher {code} (Cà phê sữa đá) đã được sử dụng")
    counter.goto(f"{demo.base}/counter/")
    counter.fill("#q", "0911222333")
    counter.press("#q", "Enter")
    assert counter.inner_text("#balance") == f"{balance - 50} điểm"  # the console agrees with the chat

    side = chat.context.new_page()
    side.set_viewport_size({"width": 1400, "height": 850})
    side.goto(f"{demo.base}/_emulator/demo")
    side.wait_for_timeout(1500)
    side.screenshot(path=str(ARTIFACTS / "demo-4-side-by-side.png"))
