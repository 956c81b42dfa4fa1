"""A real shop in an afternoon: the first-run setup page, "Kết nối Zalo OA" by OAuth v4 + PKCE, the domain
verification file, and the way back in for an owner who forgot the password."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.setup import setup_code
from loyalty.program import load_rules
from models import AuditLog, FollowerSync, OaToken, Reward, Role, ShopProfile, Staff, Store, Tier
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import TOKEN_URL, Console, ZaloFake
from zalo.oauth import code_challenge, code_verifier

FIXTURES = Path(__file__).parent / "fixtures" / "zalo" / "api"
FROM_A_PROXY = {"X-Forwarded-For": "203.0.113.9"}  # a stranger, through the shop's own reverse proxy
SETUP_FORM = {
    "shop_name": "Tiệm Trà Mây",
    "name": "Chị Mây",
    "username": "may",
    "password": "mat-khau-moi-1",
    "password2": "mat-khau-moi-1",
    "preset": "cafe",
    "store_code_0": "q3",
    "store_name_0": "Trà Mây Quận 3",
    "store_code_1": "TD",
    "store_name_1": "Trà Mây Thủ Đức",
    "store_points_1": "2",
    "store_per_1": "10000",
}


def _setup_csrf(console: Console, headers: dict[str, str] | None = None) -> str:
    html = console.client.get("/setup/", headers=headers or {}).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match[1]


def test_a_fresh_install_opens_on_the_setup_page_and_makes_the_shop(app: Flask, session: Session) -> None:
    console = Console(app)
    assert console.get("/").headers["Location"].endswith("/setup/")
    assert console.get("/login").headers["Location"].endswith("/setup/")
    response = console.client.post("/setup/", data={**SETUP_FORM, "csrf_token": _setup_csrf(console)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/zalo/")

    owner = session.scalar(select(Staff).where(Staff.username == "may"))
    assert owner is not None and owner.role == Role.OWNER and owner.name == "Chị Mây"
    tiers = list(session.scalars(select(Tier).order_by(Tier.threshold)))
    assert [t.name for t in tiers] == ["Thành viên", "Bạc", "Vàng", "Kim cương"]
    rules = load_rules(session)
    gift = session.get(Reward, rules.automations.birthday_reward_id)
    assert (rules.earn_rate.points, rules.earn_rate.unit_amount, gift.name if gift else None) == (
        1,
        10_000,
        "Một ly size M",
    )
    stores = {s.code: (s.name, s.earn_points, s.earn_unit_amount) for s in session.scalars(select(Store))}
    assert stores == {"Q3": ("Trà Mây Quận 3", None, None), "TD": ("Trà Mây Thủ Đức", 2, 10_000)}
    assert session.get(ShopProfile, 1).name == "Tiệm Trà Mây"  # type: ignore[union-attr]
    assert session.scalar(select(AuditLog.action).where(AuditLog.staff_id == owner.id)) == "first_run_setup"

    # The owner is signed in, the dashboard shows the program, and the setup page is gone for good.
    assert console.get("/admin/").status_code == 200
    assert "Kim cương" in text_of(console.get("/admin/tiers"))
    assert console.get("/setup/").headers["Location"].endswith("/login")
    again = console.client.post("/setup/", data={**SETUP_FORM, "username": "ke-la", "csrf_token": "x"})
    assert again.status_code in (302, 400) and session.scalar(select(func.count()).select_from(Staff)) == 1


def test_the_shop_name_typed_at_setup_is_the_one_the_chat_uses(app: Flask, zalo: ZaloFake, session: Session) -> None:
    from tests.helpers import post_event, run_jobs, text_event

    console = Console(app)
    console.client.post("/setup/", data={**SETUP_FORM, "csrf_token": _setup_csrf(console)})
    zalo.accept_messages()
    assert post_event(app.test_client(), text_event("giúp", "m-help")).status_code == 200
    run_jobs(app)
    assert "Tiệm Trà Mây" in json.dumps(zalo.sent_messages(), ensure_ascii=False)


def test_a_stranger_needs_the_code_from_the_servers_log(app: Flask, session: Session, caplog) -> None:  # type: ignore[no-untyped-def]
    console = Console(app)
    page = console.client.get("/setup/", headers=FROM_A_PROXY)
    assert "Mã cài đặt" in text_of(page) and 'name="shop_name"' not in text_of(page)
    code = setup_code(app.extensions["tichdiem"].settings.secret_key)
    assert code in caplog.text  # the operator reads it in the log
    caplog.clear()
    console.client.get("/setup/", headers=FROM_A_PROXY)
    assert code not in caplog.text  # once a minute: a stranger reloading cannot flood the log

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]  # type: ignore[index]
    wrong = console.client.post(
        "/setup/code", data={"code": "AAAA-BBBB-CCCC", "csrf_token": csrf}, headers=FROM_A_PROXY
    )
    assert wrong.status_code == 403
    # Posting the form without the code is sent back to the code page, and creates nothing.
    sneaky = console.client.post("/setup/", data={**SETUP_FORM, "csrf_token": csrf}, headers=FROM_A_PROXY)
    assert sneaky.status_code == 302 and session.scalar(select(func.count()).select_from(Staff)) == 0

    right = console.client.post("/setup/code", data={"code": code.lower(), "csrf_token": csrf}, headers=FROM_A_PROXY)
    assert right.status_code == 302
    form = console.client.get("/setup/", headers=FROM_A_PROXY)
    assert 'name="shop_name"' in text_of(form)


def test_a_form_with_mistakes_keeps_what_was_typed_and_creates_nothing(app: Flask, session: Session) -> None:
    console = Console(app)
    csrf = _setup_csrf(console)
    for change, reason in (
        ({"password2": "khac-nhau-123"}, "không giống nhau"),
        ({"preset": "casino"}, "chương trình khởi đầu"),
        ({"store_code_0": "", "store_name_0": "", "store_code_1": "", "store_name_1": ""}, "ít nhất một cửa hàng"),
        ({"store_code_1": "Q3"}, "mã riêng"),
        ({"store_points_1": "hai"}, "mức tích điểm riêng"),
        ({"password": "ngan", "password2": "ngan"}, "ít nhất 8 ký tự"),
    ):
        response = console.client.post("/setup/", data={**SETUP_FORM, **change, "csrf_token": csrf})
        assert response.status_code == 400 and reason in text_of(response), change
        assert 'value="Tiệm Trà Mây"' in text_of(response)
    assert session.scalar(select(func.count()).select_from(Staff)) == 0
    assert session.scalar(select(func.count()).select_from(Tier)) == 0
    assert session.get(ShopProfile, 1) is None


def test_an_install_made_with_the_cli_never_shows_the_setup_page(app: Flask, session: Session) -> None:
    staffed_shop(session)
    console = Console(app)
    assert console.get("/setup/").headers["Location"].endswith("/login")
    assert console.get("/login").status_code == 200


# --- Kết nối Zalo OA --------------------------------------------------------------------------------------------


def _connect(app: Flask) -> tuple[Console, dict[str, list[str]]]:
    console = login(app, "chu")
    response = console.post("/admin/zalo/connect", page="/admin/zalo/")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://oauth.zaloapp.com/v4/oa/permission"
    return console, parse_qs(target.query)


def test_connect_sends_the_owner_to_zalos_permission_page_with_the_saved_challenge(
    app: Flask, session: Session
) -> None:
    staffed_shop(session)
    settings = app.extensions["tichdiem"].settings
    page = text_of(login(app, "chu").get("/admin/zalo/"))
    challenge = code_challenge(code_verifier(settings.secret_key))
    assert challenge in page and "http://127.0.0.1:5000/admin/zalo/callback" in page  # what to paste in Zalo
    assert "http://127.0.0.1:5000/webhooks/zalo" in page and "user_send_text" in page

    _, query = _connect(app)
    assert query["app_id"] == [settings.zalo_app_id]
    assert query["redirect_uri"] == ["http://127.0.0.1:5000/admin/zalo/callback"]
    assert query["code_challenge"] == [challenge] and len(query["state"][0]) >= 32
    assert len(code_verifier(settings.secret_key)) == 43  # PKCE's minimum, as Zalo's SDK makes it


def test_the_callback_exchanges_the_code_keeps_the_grant_and_syncs_followers(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    staffed_shop(session)
    settings = app.extensions["tichdiem"].settings
    console, query = _connect(app)
    zalo.mock.add(responses.POST, TOKEN_URL, json=json.loads((FIXTURES / "oa_access_token.json").read_text()))
    response = console.get(f"/admin/zalo/callback?code=the-code&oa_id={settings.zalo_oa_id}&state={query['state'][0]}")
    assert response.status_code == 302

    (call,) = [c for c in zalo.mock.calls if c.request.url == TOKEN_URL]
    body = parse_qs(str(call.request.body))
    assert body["grant_type"] == ["authorization_code"] and body["code"] == ["the-code"]
    assert body["code_verifier"] == [code_verifier(settings.secret_key)] and body["app_id"] == [settings.zalo_app_id]
    assert call.request.headers["secret_key"] == settings.zalo_app_secret
    token = session.scalar(select(OaToken))
    assert token is not None and token.access_token == "AT-granted-by-the-oa-admin"
    assert token.refresh_token_issued_at is not None and token.expires_at is not None
    assert app.extensions["tichdiem"].zalo.tokens.access_token() == "AT-granted-by-the-oa-admin"
    assert session.scalar(select(func.count()).select_from(FollowerSync)) == 1  # followers from before the bot
    profile = session.get(ShopProfile, 1)
    assert profile is not None and profile.connected_oa_id == settings.zalo_oa_id
    assert "zalo_connect" in set(session.scalars(select(AuditLog.action)))
    page = text_of(console.get("/admin/zalo/"))
    assert "Đã kết nối Zalo OA" in page


def test_a_callback_without_this_browsers_state_is_refused_before_any_exchange(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    staffed_shop(session)
    console, _ = _connect(app)
    response = console.get("/admin/zalo/callback?code=attacker-code&oa_id=1&state=forged")
    assert response.status_code == 302
    assert not [c for c in zalo.mock.calls if c.request.url == TOKEN_URL]
    assert "không phải do bạn mở" in text_of(console.get("/admin/zalo/"))
    assert login(app, "mkt").get("/admin/zalo/").status_code == 403  # owners only


def test_a_refused_exchange_says_why_and_keeps_the_old_pair(app: Flask, zalo: ZaloFake, session: Session) -> None:
    staffed_shop(session)
    console, query = _connect(app)
    zalo.mock.add(responses.POST, TOKEN_URL, json={"error": -14019, "error_name": "Invalid code verifier"})
    console.get(f"/admin/zalo/callback?code=c&state={query['state'][0]}")
    page = text_of(console.get("/admin/zalo/"))
    assert "Invalid code verifier" in page and "code challenge" in page
    assert session.scalar(select(OaToken.access_token)) in (None, "AT-initial")


def test_the_checklist_turns_green_as_the_facts_arrive(app: Flask, zalo: ZaloFake, session: Session) -> None:
    from tests.helpers import post_event, text_event

    staffed_shop(session)
    console = login(app, "chu")

    def steps() -> dict[str, bool]:
        return {s["key"]: s["done"] for s in console.get("/admin/zalo/status").json["steps"]}

    before = steps()
    assert before["app"] is True and before["domain"] is False and before["event"] is False
    console.post("/admin/zalo/verification", {"code": "zalo_verifierAbC123.html"}, page="/admin/zalo/")
    assert post_event(app.test_client(), text_event("chào", "m-hello")).status_code == 200
    after = steps()
    assert after["domain"] is True and after["event"] is True


def test_the_domain_verification_file_and_meta_tag_are_served(app: Flask, session: Session) -> None:
    staffed_shop(session)
    console = login(app, "chu")
    console.post("/admin/zalo/verification", {"code": "Xk9_Qz-1"}, page="/admin/zalo/")
    stranger = app.test_client()
    file = stranger.get("/zalo_verifierXk9_Qz-1.html")
    assert file.status_code == 200 and 'content="Xk9_Qz-1"' in file.get_data(as_text=True)
    assert stranger.get("/zalo_verifierWRONG.html").status_code == 404
    home = stranger.get("/")
    assert home.status_code == 200 and '<meta name="zalo-platform-site-verification" content="Xk9_Qz-1"' in text_of(
        home
    )
    bad = console.post("/admin/zalo/verification", {"code": '"><script>'}, page="/admin/zalo/")
    assert bad.status_code == 302 and session.scalar(select(ShopProfile.zalo_site_verification)) == "Xk9_Qz-1"


def test_the_emulator_plays_zalos_permission_page(demo: Any) -> None:
    """The whole flow against the emulator: our link, its "Cho phép", the code exchange with the verifier."""
    import requests

    http = requests.Session()
    form = http.get(f"{demo.base}/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]  # type: ignore[index]
    http.post(f"{demo.base}/login", data={"username": "chu", "password": "demo1234", "csrf_token": csrf})
    page = http.get(f"{demo.base}/admin/zalo/").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    permission = http.post(f"{demo.base}/admin/zalo/connect", data={"csrf_token": csrf})
    assert "Cho phép" in permission.text and "/_emulator/oauth/v4/oa/permission" in permission.url
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', permission.text))
    allowed = http.post(permission.url.split("?")[0], data=fields, allow_redirects=False)
    code = parse_qs(urlsplit(allowed.headers["Location"]).query)["code"][0]
    back = http.get(allowed.headers["Location"])
    assert back.ok and "Đã kết nối Zalo OA" in back.text
    with demo.app.app_context():
        services = demo.app.extensions["tichdiem"]
        with services.sessions() as session:
            stored = session.scalar(select(OaToken.access_token))
    assert stored == demo.state.access_token and demo.state.access_token.startswith("demo-access-")
    # Zalo's codes work once, and only with the verifier whose challenge the link carried.
    settings = services.settings
    again = http.post(
        f"{demo.base}/_emulator/oauth/v4/oa/access_token",
        data={
            "code": code,
            "app_id": settings.zalo_app_id,
            "grant_type": "authorization_code",
            "code_verifier": code_verifier(settings.secret_key),
        },
        headers={"secret_key": settings.zalo_app_secret},
    )
    assert again.json()["error"] == -14004


def test_reset_password_from_the_server_is_the_way_back_in(app: Flask, session: Session) -> None:
    staffed_shop(session)
    owner = session.scalar(select(Staff).where(Staff.username == "chu"))
    assert owner is not None
    owner.is_active = False
    session.commit()
    result = app.test_cli_runner().invoke(args=["staff", "reset-password", "chu", "--password", "quen-mat-roi-9"])
    assert result.exit_code == 0, result.output
    assert login(app, "chu", "quen-mat-roi-9").get("/admin/").status_code == 200
    assert "reset" in json.dumps(session.scalar(select(AuditLog.details).where(AuditLog.actor == "cli")))
    short = app.test_cli_runner().invoke(args=["staff", "reset-password", "chu", "--password", "ngan"])
    assert short.exit_code != 0 and "8 ký tự" in short.output
    unknown = app.test_cli_runner().invoke(args=["staff", "reset-password", "ai-do", "--password", "quen-mat-roi-9"])
    assert unknown.exit_code != 0


def test_setup_code_command_prints_the_code_the_page_asks_for(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["setup-code"])
    assert result.output.strip() == setup_code(app.extensions["tichdiem"].settings.secret_key)


def test_the_counter_poster_has_the_oas_qr_and_how_to_earn(app: Flask, session: Session) -> None:
    import io

    import zxingcpp
    from PIL import Image

    staffed_shop(session)
    page = login(app, "mkt").get("/admin/zalo/poster")
    html = page.get_data(as_text=True)
    oa_id = app.extensions["tichdiem"].settings.zalo_oa_id
    assert page.status_code == 200 and "Quét để tích điểm" in html and f"https://zalo.me/{oa_id}" in html
    assert "@page { size: A5" in html and "10.000đ" in html
    # The QR drawn is the OA's link's (the same SVG the qrcode library draws for it; its PNG twin decodes so).
    from console.qr import qr_png, qr_svg

    assert qr_svg(f"https://zalo.me/{oa_id}") in html
    (qr,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_png(f"https://zalo.me/{oa_id}"))))
    assert qr.text == f"https://zalo.me/{oa_id}"


def test_staff_made_with_the_cli_keep_their_login_before_any_owner(app: Flask, session: Session) -> None:
    from console.staff import create_staff

    create_staff(session, username="thu-ngan", password="mat-khau-123", role="cashier")
    session.commit()
    console = Console(app)
    assert console.get("/login").status_code == 200
    assert console.login("thu-ngan").headers["Location"].endswith("/counter/")
