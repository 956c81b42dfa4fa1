"""Trust at the boundary: nobody takes another member's points through the chat (issue 13)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import Member, Voucher
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Chat, ZaloFake, credit, run_jobs

USER = "8958041078911298472"


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def _member(session: Session, zalo_user_id: str = USER) -> Member:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == zalo_user_id)).one()


def test_two_chat_redemptions_in_a_row_give_two_vouchers(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    """SQLite reuses a deleted row's id: a key built from the question's row id returned the first voucher."""
    chat = Chat(app, zalo)
    chat.follow()
    chat.share_info(name="Trần Thị B", phone="84987654321", user_dob="30/10/1999")
    credit(session, _member(session), 250, "gift-250")
    codes = []
    for _ in range(2):
        chat.say("đổi 2")
        (done,) = chat.say("CÓ")
        assert done["text"].startswith("Đổi quà thành công!"), done
        codes.append(done["text"].split("Mã voucher: ")[1][:9])
    assert codes[0] != codes[1]
    assert session.scalar(select(func.count()).select_from(Voucher)) == 2
    assert _member(session).points_balance == 50


# --- a phone typed in the chat is a claim, not a proof ---------------------------------------------------


@pytest.fixture
def imported(session: Session, shop) -> Member:
    """A member the shop imported from Excel: a balance, no Zalo account."""
    member = create_member(session, now=datetime.now(UTC), name="Chị Hà", phone="84987654321", source="import")
    session.commit()
    credit(session, member, 120, "gift-120")
    return member


@pytest.mark.parametrize("how", ["typed", "shared"])
def test_typing_a_members_phone_does_not_take_the_member_over(
    app: Flask, zalo: ZaloFake, session: Session, imported: Member, how: str
) -> None:
    chat = Chat(app, zalo)
    chat.follow()
    if how == "typed":
        (answer,) = chat.say("sđt 0987654321")
    else:
        (answer,) = chat.share_info(name="Kẻ Lạ", phone="84987654321", user_dob="01/01/1990")
    assert "đã tìm thấy" not in answer["text"]
    assert answer["text"].startswith("Số 0987 654 321 đã có thẻ thành viên tại Cà phê Sữa Đá.")
    assert "mã xác nhận" in answer["text"]
    session.expire_all()
    kept = session.get(Member, imported.id)
    assert (kept.zalo_user_id, kept.name, kept.points_balance) == (None, "Chị Hà", 120)
    # The chat user sees nothing of that member: no balance, no vouchers, no card.
    for command in ("điểm", "quà", "thẻ", "lịch sử"):
        (reply,) = chat.say(command)
        # The confirmation code is random and may contain "120"; the balance must not appear.
        shown = re.sub(r"mã xác nhận \d{6}", "mã xác nhận", reply["text"])
        assert "120" not in shown and "Chị Hà" not in shown
        assert reply["text"].startswith("Số 0987 654 321 đã có thẻ thành viên")  # how to finish, again


def _link(cashier, member: Member, code: str):  # type: ignore[no-untyped-def]
    page = f"/counter/members/{member.id}"
    return cashier.post(f"{page}/link", {"code": code}, page=page)


def _code_from(text: str) -> str:

    match = re.search(r"mã xác nhận (\d{6})", text)
    assert match, text
    return match[1]


def test_cashier_links_after_checking_the_code_from_the_chat(
    app: Flask, zalo: ZaloFake, session: Session, imported: Member
) -> None:
    from models import AuditLog

    chat = Chat(app, zalo)
    chat.follow()
    (answer,) = chat.say("sđt 0987654321")
    code = _code_from(answer["text"])
    cashier = login(app, "thu-ngan")
    page = text_of(cashier.get(f"/counter/members/{imported.id}"))
    assert "Khách xin liên kết Zalo với thẻ này" in page and code not in page  # the cashier must get it from the chat
    wrong = "000000" if code != "000000" else "111111"
    _link(cashier, imported, wrong)
    assert "Mã xác nhận không đúng" in text_of(cashier.get(f"/counter/members/{imported.id}"))
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id is None
    before = len(zalo.sent_messages())
    response = _link(cashier, imported, code)
    assert response.status_code == 302
    run_jobs(app)
    linked = [m["message"] for m in zalo.sent_messages()[before:]]
    assert linked[0]["text"].startswith("Chào Chị Hà! Thu ngân đã xác nhận")
    assert "attachment" in linked[1]  # the member card
    session.expire_all()
    member = session.get(Member, imported.id)
    assert (member.zalo_user_id, member.name) == (USER, "Chị Hà")  # the imported name is kept
    assert session.scalars(select(AuditLog).where(AuditLog.action == "link_zalo")).one().member_id == imported.id
    assert chat.texts(chat.say("điểm"))[0].startswith("Bạn đang có 120 điểm.")
    # The same code again: nothing pending any more, nothing linked twice.
    again = _link(cashier, imported, code)
    assert again.status_code == 302
    assert "đã được liên kết rồi" in text_of(cashier.get(f"/counter/members/{imported.id}"))


def test_five_wrong_codes_cancel_the_request(app: Flask, zalo: ZaloFake, session: Session, imported: Member) -> None:
    chat = Chat(app, zalo)
    chat.follow()
    code = _code_from(chat.say("sđt 0987654321")[0]["text"])
    cashier = login(app, "thu-ngan")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        _link(cashier, imported, wrong)
    _link(cashier, imported, code)
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id is None


def test_a_new_phone_still_registers_at_once(app: Flask, zalo: ZaloFake, session: Session, imported: Member) -> None:
    chat = Chat(app, zalo)
    chat.follow()
    chat.say("sđt 0987654321")
    (answer, _card, consent) = chat.say("sđt 0912345678")  # "not my number": a new phone registers a new card
    assert answer["text"].startswith("Đăng ký thành công!")
    assert "Bạn có muốn nhận ưu đãi" in consent["text"]  # asked once, right after joining
    assert _member(session).phone == "84912345678"


# --- the server refuses to start with a guessable SECRET_KEY ------------------------------------------------


@pytest.mark.parametrize("key", ["dev-only-secret-change-me", "short-but-not-default"])
def test_app_refuses_a_guessable_secret_key(key: str) -> None:
    from tests.conftest import TEST_SETTINGS
    from tichdiem.app import create_app
    from tichdiem.config import InsecureSettings

    with pytest.raises(InsecureSettings, match="SECRET_KEY"):
        create_app(TEST_SETTINGS.with_overrides(secret_key=key))
    with pytest.raises(InsecureSettings, match="SECRET_KEY"):  # no Zalo, no emulator: still production
        create_app(TEST_SETTINGS.with_overrides(secret_key=key, zalo_app_id=""))


@pytest.mark.slow
def test_worker_command_exits_non_zero_naming_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "SECRET_KEY", "DATABASE_URL"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", REDIS_URL="redis://127.0.0.1:1/0", ZALO_APP_ID="1")
    done = subprocess.run(
        [sys.executable, "-m", "tichdiem", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SECRET_KEY is the development default" in done.stderr


def test_the_demo_needs_no_secret_key() -> None:
    from tests.conftest import TEST_SETTINGS
    from tichdiem.demo import demo_settings

    demo_settings(TEST_SETTINGS.with_overrides(secret_key="dev-only-secret-change-me"), "http://x").check_secure()


# --- sessions, cookies, headers, redirects, proxies --------------------------------------------------------


def _owner_and_cashier(app: Flask):  # type: ignore[no-untyped-def]
    return login(app, "chu"), login(app, "thu-ngan")


def test_logout_ends_every_session_of_that_staff_member(app: Flask, shop) -> None:
    laptop, phone = login(app, "thu-ngan"), login(app, "thu-ngan")
    copied = app.test_client()  # a stolen cookie
    copied.set_cookie("session", laptop.client.get_cookie("session").value)
    assert copied.get("/counter/").status_code == 200
    laptop.post("/logout", page="/counter/")
    for client in (phone.client, copied):
        response = client.get("/counter/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("change", [{"password": "mat-khau-moi-456"}, {"active": "0"}])
def test_new_password_or_lock_ends_the_staff_members_sessions(app: Flask, session: Session, shop, change) -> None:
    from models import Staff

    owner, cashier = _owner_and_cashier(app)
    cashier_id = session.scalars(select(Staff.id).where(Staff.username == "thu-ngan")).one()
    assert owner.post(f"/admin/staff/{cashier_id}", change, page="/admin/staff").status_code == 302
    assert cashier.get("/counter/").status_code == 302
    assert owner.get("/counter/").status_code == 200  # the owner who made the change stays in


def test_owner_changing_own_password_stays_logged_in_here_only(app: Flask, session: Session, shop) -> None:
    from models import Staff

    here, elsewhere = login(app, "chu"), login(app, "chu")
    owner_id = session.scalars(select(Staff.id).where(Staff.username == "chu")).one()
    here.post(f"/admin/staff/{owner_id}", {"password": "mat-khau-moi-456"}, page="/admin/staff")
    assert here.get("/admin/").status_code == 200
    assert elsewhere.get("/admin/").status_code == 302


def test_session_cookie_flags_and_lifetime(app: Flask, shop) -> None:
    response = login(app, "chu").login("chu")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # http://127.0.0.1
    assert app.permanent_session_lifetime.total_seconds() == 12 * 3600
    assert app.config["SESSION_REFRESH_EACH_REQUEST"]


def test_session_cookie_is_secure_behind_https(settings, zalo) -> None:  # type: ignore[no-untyped-def]
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(public_url="https://tiem.example.vn"), config={"TESTING": True})
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("path", ["/login", "/counter/", "/admin/", "/healthz", "/c/ABCDEFGH"])
def test_security_headers_on_every_page(app: Flask, shop, path: str) -> None:
    headers = app.test_client().get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"


@pytest.mark.parametrize(
    "target", ["/%09/evil.com", "//evil.com", "/\\evil.com", "https://evil.com", "/%0d/evil.com", "evil.com", "/%5C/x"]
)
def test_login_never_redirects_off_site(app: Flask, shop, target: str) -> None:
    console = login(app, "chu")
    response = console.client.post(
        f"/login?next={target}", data={"username": "chu", "password": "mat-khau-123", "csrf_token": console.csrf()}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_login_goes_back_to_a_same_site_path(app: Flask, shop) -> None:
    console = login(app, "chu")
    response = console.client.post(
        "/login?next=/admin/members?q=Lan",
        data={"username": "chu", "password": "mat-khau-123", "csrf_token": console.csrf()},
    )
    assert response.headers["Location"] == "/admin/members?q=Lan"


def test_forwarded_for_is_believed_only_from_trusted_proxies(settings, zalo, session: Session, shop) -> None:  # type: ignore[no-untyped-def]
    from tichdiem.app import create_app

    def guesses_until_throttled(app: Flask, forwarded: str) -> int:
        client = app.test_client()
        for attempt in range(1, 30):
            headers = {"X-Forwarded-For": f"198.51.100.{attempt}" if forwarded == "rotating" else forwarded}
            token = _login_csrf(client)
            response = client.post(
                "/login", data={"username": f"x{attempt}", "password": "y", "csrf_token": token}, headers=headers
            )
            if response.status_code == 429:
                return attempt
        return 0

    direct = create_app(settings, config={"TESTING": True})
    assert guesses_until_throttled(direct, "rotating") == 21  # a forged header changes nothing: one client
    proxied = create_app(settings.with_overrides(trusted_proxies=1), config={"TESTING": True})
    assert guesses_until_throttled(proxied, "rotating") == 0  # behind our proxy: each real client counted alone
    assert guesses_until_throttled(proxied, "203.0.113.7") == 21


def _login_csrf(client) -> str:  # type: ignore[no-untyped-def]

    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]  # type: ignore[index]


# --- guessing codes ---------------------------------------------------------------------------------------


def _open_claim(session: Session, shop, store: str = "Q1") -> str:  # type: ignore[no-untyped-def]
    from loyalty.claims import create_claim

    claim, _ = create_claim(
        session, 250_000, key=f"k-{store}", now=datetime.now(UTC), store_id=shop["stores"][store].id
    )
    session.commit()
    return claim.code


def test_public_claim_page_is_the_same_for_open_and_unknown_codes(app: Flask, session: Session, shop) -> None:
    code = _open_claim(session, shop)
    client = app.test_client()
    open_page, unknown_page = client.get(f"/c/{code}"), client.get("/c/ZZZZZZ")
    assert open_page.status_code == unknown_page.status_code == 200
    assert open_page.get_data(as_text=True).replace(code, "ZZZZZZ") == unknown_page.get_data(as_text=True)


def test_public_claim_page_is_rate_limited_per_ip(app: Flask, shop) -> None:
    client = app.test_client()
    statuses = [client.get(f"/c/AAAA{i:02d}").status_code for i in range(61)]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    assert other.get("/c/AAAAAA").status_code == 200


def test_bare_codes_in_the_chat_count_as_guesses(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    code = _open_claim(session, shop)
    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    for guess in ("AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD", "EEEEEE"):
        (answer,) = chat.say(guess)
        assert "không đúng" not in answer["text"]  # a person typing a word gets the normal answer
    (locked,) = chat.say(code)  # the right code, bare: not even looked up while locked
    assert "+25 điểm" not in locked["text"]
    assert _member(session).points_balance == 0
    (explicit,) = chat.say(f"#{code}")
    assert explicit["text"].startswith("Bạn đã nhập sai mã quá nhiều lần.")


def test_ordinary_six_letter_words_are_not_guesses(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    for text in ("xin chào", "cảm ơn!", "ok ok ok", "ngon quá", "thanks a lot"):
        chat.say(text)
    session.expire_all()
    from models import ZaloUser

    assert session.scalars(select(ZaloUser.failed_claims).where(ZaloUser.user_id == USER)).one() == 0


def test_counter_voucher_page_and_form_count_unknown_codes(app: Flask, shop) -> None:
    cashier = login(app, "thu-ngan")
    for i in range(5):
        cashier.get(f"/counter/vouchers/ZZZZZZZ{i}")
    for i in range(5):
        cashier.post(f"/counter/vouchers/YYYYYYY{i}/use", {"op": f"o{i}"})
    response = cashier.post("/counter/voucher", {"code": "XXXX-XXXX"}, follow_redirects=True)
    assert "Nhập sai mã voucher quá nhiều lần" in text_of(response)


def test_cashier_and_api_key_see_only_their_own_stores_claims(app: Flask, session: Session, shop) -> None:
    from console.staff import create_api_key
    from models import Claim

    outlet_code = _open_claim(session, shop, "OUTLET")
    outlet_claim = session.scalars(select(Claim).where(Claim.code == outlet_code)).one()
    cashier = login(app, "thu-ngan")  # staffed_shop's cashier has no store: give her Q1
    from models import Staff

    staff = session.scalars(select(Staff).where(Staff.username == "thu-ngan")).one()
    staff.store_id = shop["stores"]["Q1"].id
    session.commit()
    assert cashier.get(f"/counter/claims/{outlet_claim.id}").status_code == 404
    assert login(app, "chu").get(f"/counter/claims/{outlet_claim.id}").status_code == 200
    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None).secret
    session.commit()
    response = app.test_client().get(f"/api/v1/claims/{outlet_code}/qr.png", headers={"X-Api-Key": key})
    assert response.status_code == 404


# --- exports and imports ------------------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","Bấm")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


def test_exports_neutralise_formulas(app: Flask, session: Session, shop) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    for i, name in enumerate(FORMULAS):
        create_member(session, now=datetime.now(UTC), name=name, phone=f"8491234560{i}")
    session.commit()
    owner = login(app, "chu")
    text = owner.get("/admin/export/members.csv").get_data(as_text=True).lstrip("\ufeff")
    names = [row[1] for row in csv.reader(io.StringIO(text))][1:]
    assert names == ["'" + name for name in FORMULAS]
    sheet = load_workbook(io.BytesIO(owner.get("/admin/export/members.xlsx").data)).active
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells] == ["'" + name.replace("\r", "\n") for name in FORMULAS]  # XML reads CR as LF
    assert {c.data_type for c in cells} == {"s"}  # text cells, never formulas


def _declared_huge_xlsx() -> bytes:
    """A real 2-row workbook whose sheet declares the whole grid (A1:XFD1048576), as an attacker's would."""
    import io
    import zipfile

    from openpyxl import Workbook

    workbook, out = Workbook(), io.BytesIO()
    workbook.active.append(["Họ tên", "Số điện thoại"])
    workbook.active.append(["Lan", "0912345678"])
    workbook.save(out)
    source, patched = zipfile.ZipFile(io.BytesIO(out.getvalue())), io.BytesIO()
    with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<dimension ref="A1:B2" />', b'<dimension ref="A1:XFD1048576" />')
                assert b"XFD1048576" in data
            target.writestr(item, data)
    return patched.getvalue()


def test_an_xlsx_declaring_the_whole_grid_reads_only_its_cells() -> None:
    import tracemalloc

    from loyalty.member_import import MAX_COLUMNS, read_table

    content = _declared_huge_xlsx()
    assert len(content) < 10_000
    tracemalloc.start()
    table = read_table("bom.xlsx", content)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [row[:2] for row in table] == [["Họ tên", "Số điện thoại"], ["Lan", "0912345678"]]
    assert all(len(row) <= MAX_COLUMNS for row in table)
    assert peak < 20 * 1024 * 1024


def test_too_many_rows_are_refused_with_a_clear_reason(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from loyalty import member_import

    monkeypatch.setattr(member_import, "MAX_ROWS", 10)
    content = ("SĐT\n" + "\n".join(f"09{i:08d}" for i in range(11))).encode()
    with pytest.raises(member_import.ImportFileError, match="hơn 10 dòng"):
        member_import.read_table("a.csv", content)
    with pytest.raises(member_import.ImportFileError, match="Không đọc được tệp CSV"):
        member_import.read_table("a.csv", b"SDT\n" + b'"' + b"x" * 200_000 + b'"')


def test_upload_is_parsed_in_the_job_not_the_request(app: Flask, session: Session, shop) -> None:
    import io

    from models import MemberImport

    owner = login(app, "chu")
    content = ("Họ tên,SĐT\n" + "\n".join(f"Khách {i},09{i:08d}" for i in range(300))).encode()
    data = {"file": (io.BytesIO(content), "khach.csv")}
    response = owner.post("/admin/import", data, page="/admin/import", content_type="multipart/form-data")
    job = session.scalars(select(MemberImport)).one()
    assert job.status == "checking" and job.total_rows == 0  # the request read only the first rows
    assert "Đang đọc và kiểm tra từng dòng" in text_of(owner.get(response.headers["Location"]))
    run_jobs(app)
    session.expire_all()
    assert (job.status, job.total_rows, job.created) == ("preview", 300, 300)
    assert 'id="summary"' in text_of(owner.get(response.headers["Location"]))


# --- message texts, inline scripts, health -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["Chào {ten.__class__}", "Chào {ten:>5000000}", "Giảm {0} cho {ten}", "{x}"])
def test_unknown_placeholders_are_field_errors_not_500s(app: Flask, shop, text: str) -> None:
    mkt = login(app, "mkt")
    form = {"name": "Thử", "text": text, "when": "now"}
    response = mkt.post("/admin/broadcasts/new", {**form, "action": "preview"}, page="/admin/broadcasts/new")
    page = text_of(response)
    assert response.status_code < 500
    assert "Không hiểu" in page and "Chỉ dùng được: {ten} (tên khách)" in page


def test_program_texts_refuse_unknown_placeholders(app: Flask, shop) -> None:
    from console.admin.program_form import from_form, to_form

    form = to_form(ProgramRules()) | {"tier_up_text": "Lên hạng {hang:>900000}"}
    rules, errors = from_form({k: str(v) if v is not None else "" for k, v in form.items()}, ProgramRules())
    assert rules is None and errors["tier_up_text"].startswith("Không hiểu {hang:>900000}.")


def test_personalise_replaces_only_known_names() -> None:
    from loyalty.placeholders import personalize

    assert (
        personalize("Chào {ten}, {ten.__class__} {x} {ten:>9} {", ten="Lan")
        == "Chào Lan, {ten.__class__} {x} {ten:>9} {"
    )


def test_no_template_data_inside_inline_scripts_or_handlers() -> None:
    from pathlib import Path

    for path in Path("templates").rglob("*.html"):
        html = path.read_text()
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {path}"
        for script in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S):
            assert "{{" not in script and "{%" not in script, f"template data inside a script in {path}"


def test_api_key_names_are_data_not_code(app: Flask, session: Session, shop) -> None:
    owner = login(app, "chu")
    evil = "');alert(document.cookie);('"
    owner.post("/admin/api-keys", {"name": evil, "store_id": str(shop["stores"]["Q1"].id)}, page="/admin/api-keys")
    page = owner.get("/admin/api-keys").get_data(as_text=True)
    assert 'data-confirm="Thu hồi khóa &#39;);alert(document.cookie);(&#39;?"' in page
    assert "onsubmit" not in page


def test_healthz_tells_strangers_only_ok_or_degraded(app: Flask, shop) -> None:
    public = app.test_client().get("/healthz")
    assert public.status_code == 200 and public.json == {"status": "ok"}
    wrong = app.test_client().get("/healthz", headers={"Authorization": "Bearer nope"}).json
    assert wrong == {"status": "ok"}
    with_token = app.test_client().get("/healthz", headers={"Authorization": "Bearer health-token-for-tests"}).json
    assert with_token["database"]["backend"] in ("sqlite", "postgresql") and "mode" in with_token["queue"]
    assert "queue" in login(app, "thu-ngan").get("/healthz").json


# --- bad input: a clear 4xx or an acknowledged, logged event; never a 500 ----------------------------------


def _signed(app: Flask, body: dict) -> object:  # type: ignore[type-arg]
    import json

    from tests.helpers import post_event

    raw = json.dumps(body, ensure_ascii=True).encode()
    return post_event(app.test_client(), raw)


def _text_body(text: str = "điểm", sender: str = USER, name: str = "user_send_text", **extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "app_id": "3349222483842580322",
        "sender": {"id": sender},
        "recipient": {"id": "4024926008133882615"},
        "event_name": name,
        "message": {"text": text, "msg_id": f"m-{abs(hash((str(text), sender, name)))}"},
        "timestamp": "1724921900000",
        **extra,
    }


@pytest.mark.parametrize(
    "body",
    [
        _text_body(text="xin\u0000chào"),
        _text_body(text="lone \ud800 surrogate"),
        _text_body(sender="8958041078911298472\u0000"),
        _text_body(sender="\udc00"),
        _text_body(sender="9" * 40),
        _text_body(name="user_send_" + "x" * 70),
        _text_body(text={"nested": [1, 2]}),  # type: ignore[arg-type]
    ],
)
def test_signed_odd_events_are_stored_clean_or_acknowledged(
    app: Flask, zalo: ZaloFake, session: Session, shop, body
) -> None:  # type: ignore[no-untyped-def]
    from models import WebhookEvent

    zalo.accept_messages()
    response = _signed(app, body)
    assert response.status_code == 200, response.data
    run_jobs(app)
    for event in session.scalars(select(WebhookEvent)):
        assert "\u0000" not in str(event.payload)


def test_deeply_nested_json_is_refused_or_acknowledged(app: Flask, shop) -> None:
    import hashlib

    def sign(raw: bytes, secret: str) -> str:  # without parsing the body (the helper's json.loads would recurse)
        return "mac=" + hashlib.sha256(b"3349222483842580322" + raw + b"1" + secret.encode()).hexdigest()

    deep = '{"a":' * 1000 + "1" + "}" * 1000
    raw = ('{"event_name":"user_send_text","timestamp":"1","app_id":"3349222483842580322","x":' + deep + "}").encode()
    response = app.test_client().post(
        "/webhooks/zalo", data=raw, headers={"X-ZEvent-Signature": sign(raw, "oa-secret-key-abc")}
    )
    assert response.status_code in (200, 400)
    shallow = '{"a":' * 100 + "1" + "}" * 100
    raw = (
        '{"event_name":"user_send_text","timestamp":"1","app_id":"3349222483842580322","x":' + shallow + "}"
    ).encode()
    response = app.test_client().post(
        "/webhooks/zalo", data=raw, headers={"X-ZEvent-Signature": sign(raw, "oa-secret-key-abc")}
    )
    assert response.status_code == 200 and response.json["message"] == "ignored: malformed event"


@pytest.mark.parametrize(
    "change",
    [{"app_id": "1111111111111111111"}, {"recipient": {"id": "2222222222222222222"}}],
)
def test_events_for_another_app_or_oa_are_ignored(app: Flask, session: Session, shop, change: dict) -> None:  # type: ignore[type-arg]
    import json

    from models import WebhookEvent
    from tests.helpers import post_event

    raw = json.dumps(_text_body() | change).encode()
    headers = {}
    if "app_id" in change:  # signed as Zalo signs it: with the body's app_id first
        from tests.helpers import sign

        headers = {"X-ZEvent-Signature": sign(raw, "oa-secret-key-abc", first_id=change["app_id"])}
    response = post_event(app.test_client(), raw, headers=headers)
    assert response.status_code == 200 and response.json["message"] == "ignored: another app or OA"
    assert session.scalars(select(WebhookEvent)).all() == []


def test_follow_for_another_oa_is_ignored(app: Flask, session: Session, shop) -> None:
    from models import WebhookEvent

    body = {
        "oa_id": "999",
        "follower": {"id": USER},
        "event_name": "follow",
        "app_id": "3349222483842580322",
        "timestamp": "5",
    }
    assert _signed(app, body).json["message"] == "ignored: another app or OA"
    assert session.scalars(select(WebhookEvent)).all() == []


@pytest.fixture
def pos_key(session: Session, shop) -> str:
    from console.staff import create_api_key

    new = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None)
    session.commit()
    create_member(session, now=datetime.now(UTC), name="Lan", phone="84912345678")
    session.commit()
    return new.secret


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ('{"phone":"0912345678","amount":3000000000}', 422),
        ('{"member_id":1180591620717411303424,"amount":1000}', 422),
        ('{"phone":"0912345678","amount":1e400}', 422),
        ('{"phone":"0912345678","amount":Infinity}', 422),
        ('{"phone":"0912345678","amount":NaN}', 422),
        ('{"phone":"0912345678","amount":true}', 422),
        ('{"phone":"0912345678","amount":1000,"bill_ref":"HD\\u0000"}', 400),
        ('{"phone":"0912345678","amount":1000,"bill_ref":"HD\\ud800"}', 400),
        ('{"a":' * 1000 + "1" + "}" * 1000, 400),
    ],
)
def test_pos_api_refuses_numbers_and_text_the_database_cannot_hold(
    app: Flask, pos_key: str, raw: str, status: int
) -> None:
    response = app.test_client().post(
        "/api/v1/earns",
        data=raw,
        headers={"X-Api-Key": pos_key, "Idempotency-Key": "k1", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.data


def test_pos_api_huge_path_ids_are_404(app: Flask, pos_key: str) -> None:
    response = app.test_client().post(f"/api/v1/earns/{2**70}/reverse", headers={"X-Api-Key": pos_key})
    assert response.status_code == 404


def test_duplicate_bill_is_refused_unless_the_request_says_it_is_new(
    app: Flask, session: Session, pos_key: str
) -> None:
    def earn(idem: str, **extra: object):  # type: ignore[no-untyped-def]
        body = {"phone": "0912345678", "amount": 250_000, "bill_ref": "HD77", **extra}
        return app.test_client().post(
            "/api/v1/earns", json=body, headers={"X-Api-Key": pos_key, "Idempotency-Key": idem}
        )

    assert earn("k1").status_code == 201
    assert earn("k1").status_code == 200  # the same request again: a replay
    second = earn("k2")
    assert second.status_code == 409 and second.json["error"]["code"] == "duplicate_bill"
    assert earn("k3", new_bill=True).status_code == 201
    entry_id = earn("k1").json["entry_id"]
    app.test_client().post(f"/api/v1/earns/{entry_id}/reverse", headers={"X-Api-Key": pos_key})
    # HD77 still has k3's credit: refused; once that is refunded too, the number is free again
    assert earn("k4").status_code == 409


def test_counter_page_duplicate_bill_asks_to_confirm(app: Flask, session: Session, shop) -> None:
    member = create_member(session, now=datetime.now(UTC), name="Lan", phone="84912345678")
    session.commit()
    cashier = login(app, "thu-ngan")
    page = f"/counter/members/{member.id}"
    cashier.post(f"{page}/earn", {"amount": "250000", "bill_ref": "HD5", "op": "a"}, page=page)
    refused = cashier.post(
        f"{page}/earn", {"amount": "250000", "bill_ref": "HD5", "op": "b"}, page=page, follow_redirects=True
    )
    assert "Hóa đơn HD5 đã được tích điểm lúc" in text_of(refused)
    cashier.post(f"{page}/earn", {"amount": "250000", "bill_ref": "HD5", "op": "c", "new_bill": "on"}, page=page)
    session.expire_all()
    assert session.get(Member, member.id).points_balance == 50


@pytest.mark.parametrize(
    "path",
    [
        "/admin/members?page=99999999999999999999",
        "/admin/members?page=-3",
        "/admin/audit?page=99999999999999999999",
        "/admin/members?tier=99999999999999999999999",
        "/admin/export/ledger.csv?from=2026-01-01&to=9999-12-31",
        "/admin/export/ledger.csv?from=0001-01-01",
        "/admin/members?q=%00",
        "/counter/vouchers/AB%00CD",
        f"/admin/members/{2**70}",
    ],
)
def test_odd_console_input_is_a_clear_answer(app: Flask, shop, path: str) -> None:
    response = login(app, "chu").get(path)
    assert response.status_code in (200, 302, 400, 404), (path, response.status_code)


# --- with an approved template, the code goes to the phone's Zalo: typing it back proves the number ---------

ZBS_BY_PHONE = "https://business.openapi.zalo.me/message/template"


@pytest.fixture
def link_template(session: Session) -> None:
    from models import ZaloTemplate

    params = [{"name": "otp", "require": True, "type": "STRING", "maxLength": 10, "acceptNull": False}]
    session.add(
        ZaloTemplate(
            purpose="link_code", template_id="otp123", status="ENABLE", params=params, mapping={"otp": "ma_xac_nhan"}
        )
    )
    session.commit()


def _code_sent(zalo: ZaloFake) -> tuple[str, str]:
    import json

    (call,) = zalo.calls_to(ZBS_BY_PHONE)
    body = json.loads(call.request.body)
    return body["phone"], body["template_data"]["otp"]


def test_the_code_goes_to_the_members_phone_and_typing_it_links(
    app: Flask, zalo: ZaloFake, session: Session, imported: Member, link_template: None
) -> None:
    import responses

    zalo.mock.add(responses.POST, ZBS_BY_PHONE, json={"error": 0, "message": "Success", "data": {"msg_id": "z1"}})
    chat = Chat(app, zalo)
    chat.follow()
    (answer,) = chat.share_info(name="Hà", phone="84987654321")
    phone, code = _code_sent(zalo)
    assert phone == "84987654321" and len(code) == 6
    assert code not in answer["text"] and "đã gửi mã xác nhận 6 số qua Zalo tới chính số 0987 654 321" in answer["text"]
    (again,) = chat.say("điểm")  # how to finish, still without the code
    assert code not in again["text"] and len(zalo.calls_to(ZBS_BY_PHONE)) == 1  # sent once per request
    wrong = "000000" if code != "000000" else "111111"
    (refused,) = chat.say(wrong)
    assert refused["text"].startswith("Mã xác nhận chưa đúng.")
    assert _member_or_none(session) is None
    linked, card, _consent_question = chat.say(code[:3] + " " + code[3:])
    assert linked["text"].startswith("Chào Chị Hà! Đã xác nhận số điện thoại") and "120 điểm" in linked["text"]
    assert card["attachment"]["payload"]["template_type"] == "media"
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id == USER


def test_someone_else_typing_the_code_of_a_request_they_do_not_own_gets_nothing(
    app: Flask, zalo: ZaloFake, session: Session, imported: Member, link_template: None
) -> None:
    """A stranger claims the same phone: each request has its own code, and only one's own code links."""
    import responses

    zalo.mock.add(responses.POST, ZBS_BY_PHONE, json={"error": 0, "message": "Success", "data": {"msg_id": "z1"}})
    owner, stranger = Chat(app, zalo), Chat(app, zalo, user_id="7777777777777777777")
    owner.share_info(name="Hà", phone="84987654321")
    _, owners_code = _code_sent(zalo)
    stranger.share_info(name="Lạ", phone="84987654321")
    assert len(zalo.calls_to(ZBS_BY_PHONE)) == 2
    (refused,) = stranger.say(owners_code)  # read over the owner's shoulder: not the stranger's request
    assert refused["text"].startswith("Mã xác nhận chưa đúng.")
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id is None


def test_five_wrong_codes_in_the_chat_cancel_the_request(
    app: Flask, zalo: ZaloFake, session: Session, imported: Member, link_template: None
) -> None:
    import responses

    zalo.mock.add(responses.POST, ZBS_BY_PHONE, json={"error": 0, "message": "Success", "data": {"msg_id": "z1"}})
    chat = Chat(app, zalo)
    chat.share_info(name="Hà", phone="84987654321")
    _, code = _code_sent(zalo)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        chat.say(wrong)
    after = chat.say(code)  # too late: the request was cancelled
    assert not any("Đã xác nhận số điện thoại" in m.get("text", "") for m in after)
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id is None


def _member_or_none(session: Session) -> Member | None:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == USER)).one_or_none()
