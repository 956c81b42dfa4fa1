"""Every console page on a phone (390 px) and a laptop (1366 px): the menu reaches every section, the current
section is marked, and nothing pushes the page sideways (wide tables scroll inside their card).
Screenshots of the phone menu and of each width's widest pages go to tests/artifacts/widths-*.png."""

from __future__ import annotations

import re

from tests.browser.conftest import ARTIFACTS
from tests.conftest import Demo

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
# Pages with an id in their address: one real example each (the demo shop's first member, reward, store...).
DETAIL_PAGES = ("/admin/members/1", "/admin/rewards/1", "/counter/members/1")
SKIP = ("/logout", "/export", ".csv", ".xlsx", "/status", "/progress", "/setup", "/zalo_verifier", "/favicon")


def console_pages(demo: Demo) -> list[str]:
    """Every GET page of the console without a variable in its address, as the owner may open it."""
    pages = []
    for rule in demo.app.url_map.iter_rules():
        path = rule.rule
        if "GET" not in (rule.methods or ()) or rule.arguments or not path.startswith(("/admin", "/counter", "/")):
            continue
        if path.startswith(("/_emulator", "/webhooks", "/api", "/static", "/healthz", "/c/")) or any(
            s in path for s in SKIP
        ):
            continue
        pages.append(path)
    return sorted(set(pages) | set(DETAIL_PAGES))


def overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many pixels the page is wider than the window (0: nothing sticks out)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def test_every_page_fits_a_phone_and_a_laptop(demo: Demo, browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    page.goto(f"{demo.base}/login")
    page.fill("#username", "chu")
    page.fill("#password", "demo1234")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    pages = console_pages(demo)
    assert len(pages) >= 20, pages

    for name, size in (("phone", PHONE), ("laptop", LAPTOP)):
        page.set_viewport_size(size)
        too_wide = {}
        for path in pages:
            response = page.goto(f"{demo.base}{path}")
            assert response is not None and response.status < 400, (path, response and response.status)
            if overflow(page) > 1:
                too_wide[path] = overflow(page)
        assert not too_wide, f"{name}: pages wider than the window: {too_wide}"

    # The phone menu: hidden behind "☰ Menu", then every section; the current one is marked on every width.
    page.set_viewport_size(PHONE)
    page.goto(f"{demo.base}/admin/members/1")
    assert not page.is_visible("header nav")
    page.click(".menu-button")
    assert page.is_visible("header nav a:text-is('Nhật ký')") and page.is_visible(
        "header nav a:text-is('Quầy thu ngân')"
    )
    assert page.inner_text("header nav a[aria-current=page]") == "Thành viên"  # a member's page is in Thành viên
    page.screenshot(path=str(ARTIFACTS / "widths-phone-menu.png"), full_page=True)
    page.click("header nav a:text-is('Hạng')")
    page.wait_for_url(re.compile(r".*/admin/tiers$"))
    page.screenshot(path=str(ARTIFACTS / "widths-phone-tiers.png"), full_page=True)
    widths = page.eval_on_selector_all("main td input[type=text]", "inputs => inputs.map(i => i.offsetWidth)")
    assert widths and min(widths) >= 90  # tier names are readable, not squeezed to two letters

    page.set_viewport_size(LAPTOP)
    assert page.is_visible("header nav a:text-is('Nhật ký')")  # inline on a laptop, no button
    assert not page.is_visible(".menu-button")
    assert page.inner_text("header nav a[aria-current=page]") == "Hạng"
    page.screenshot(path=str(ARTIFACTS / "widths-laptop-tiers.png"), full_page=True)
