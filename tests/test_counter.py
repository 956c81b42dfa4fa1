"""The cashier page and counter claims, through the Flask test client and the bot."""

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.staff import create_staff
from loyalty import ledger, rewards
from loyalty.cards import card_token
from loyalty.claims import claim_points, create_claim
from loyalty.errors import ClaimUsed
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import AuditLog, Claim, LedgerEntry, Member, Store, Voucher, VoucherStatus
from tests.helpers import Chat, Console, ZaloFake, run_jobs, seed_shop

USER = "8958041078911298472"


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    q1 = shop["stores"]["Q1"]
    for username, role, store in [
        ("thu-ngan", "cashier", q1),
        ("thu-ngan-2", "cashier", q1),
        ("chu", "owner", None),
        ("mkt", "marketer", None),
        ("outlet", "cashier", shop["stores"]["OUTLET"]),
    ]:
        create_staff(
            session,
            username=username,
            password="mat-khau-123",
            role=role,
            name=username.title(),
            store_id=store.id if store else None,
        )
    # The Q1 store earns at the program's default rate in these tests.
    session.get(Store, q1.id).earn_points = None
    session.commit()
    return shop


@pytest.fixture
def lan(session: Session, app: Flask, zalo: ZaloFake, shop) -> Member:
    chat = Chat(app, zalo)
    chat.follow()
    chat.share_info(name="Lan", phone="84912345678")
    return session.scalars(select(Member)).one()


def cashier(app: Flask, username: str = "thu-ngan") -> Console:
    console = Console(app)
    assert console.login(username).status_code == 302
    return console


def flashes(response) -> list[str]:
    return re.findall(r'<div class="flash [a-z]+" role="status">([^<]+)</div>', response.get_data(as_text=True))


def chat_texts(zalo: ZaloFake) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.sent_messages()]


# --- access -------------------------------------------------------------------------------------------


def test_login_wrong_password_is_throttled_per_client_not_per_account(app: Flask, shop) -> None:
    stranger = Console(app)
    stranger.client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    response = stranger.login("thu-ngan", "sai-mat-khau")
    assert response.status_code == 401 and "Sai tên đăng nhập hoặc mật khẩu." in response.get_data(as_text=True)
    for _ in range(4):
        stranger.login("thu-ngan", "sai-mat-khau")
    throttled = stranger.login("thu-ngan", "mat-khau-123")  # right password, but this client guessed too often
    assert throttled.status_code == 429 and "Quá nhiều lần đăng nhập sai từ máy này" in throttled.get_data(as_text=True)
    # The cashier at the shop's own machine is not locked out by a stranger's guesses.
    assert Console(app).login("thu-ngan").status_code == 302


def test_pages_need_login_and_the_right_role(app: Flask, shop) -> None:
    anonymous = app.test_client().get("/counter/")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    marketer = Console(app)
    marketer.login("mkt")
    assert marketer.get("/counter/").status_code == 403
    owner = cashier(app, "chu")
    assert owner.get("/counter/").status_code == 200


def test_forms_without_csrf_token_are_refused(app: Flask, shop) -> None:
    console = cashier(app)
    assert console.client.post("/counter/find", data={"q": "0912345678"}).status_code == 400
    assert app.test_client().post("/login", data={"username": "chu", "password": "mat-khau-123"}).status_code == 400


def test_logout(app: Flask, shop) -> None:
    console = cashier(app)
    console.post("/logout")
    assert console.get("/counter/").status_code == 302


# --- earning at the counter ---------------------------------------------------------------------------


def test_scan_card_credit_bill_and_member_is_told(
    app: Flask, zalo: ZaloFake, session: Session, lan: Member, services
) -> None:
    console = cashier(app)
    token = card_token(lan, services.settings.secret_key)
    found = console.post("/counter/find", {"q": token})
    assert found.headers["Location"] == f"/counter/members/{lan.id}"
    page = console.get(found.headers["Location"]).get_data(as_text=True)
    op = re.search(r'name="op" value="([0-9a-f]+)"', page)[1]
    form = {"amount": "250.000", "bill_ref": "HD123", "op": op}
    first = console.post(f"/counter/members/{lan.id}/earn", form, follow_redirects=True)
    again = console.post(f"/counter/members/{lan.id}/earn", form, follow_redirects=True)  # double click
    assert "+25 điểm — số dư 25 điểm." in flashes(first)
    assert "+25 điểm — số dư 25 điểm." in flashes(again)
    run_jobs(app)
    assert chat_texts(zalo).count("+25 điểm từ hóa đơn 250.000đ (HD123) — số dư 25 điểm.") == 1
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 25
    audit = session.scalars(select(AuditLog)).one()
    assert (audit.action, audit.actor, audit.store_id, audit.member_id) == (
        "earn",
        f"staff:{audit.staff_id}",
        session.scalar(select(Store.id).where(Store.code == "Q1")),
        lan.id,
    )


@pytest.mark.parametrize("query", ["0912 345 678", "+84912345678"])
def test_find_by_phone(app: Flask, lan: Member, query: str) -> None:
    assert cashier(app).post("/counter/find", {"q": query}).headers["Location"] == f"/counter/members/{lan.id}"


def test_find_by_referral_code(app: Flask, lan: Member) -> None:
    assert cashier(app).post("/counter/find", {"q": lan.code.lower()}).headers["Location"].endswith(f"/{lan.id}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("TD-1-1-AAAAAAAAAAAA", "Mã thẻ không hợp lệ."),
        ("0999999999", "Không tìm thấy thành viên với “0999999999”."),
        ("", "Quét thẻ thành viên hoặc nhập số điện thoại."),
    ],
)
def test_lookup_failures(app: Flask, lan: Member, query: str, message: str) -> None:
    response = cashier(app).post("/counter/find", {"q": query}, follow_redirects=True)
    assert message in flashes(response)


def test_revoked_card_is_refused(app: Flask, zalo: ZaloFake, session: Session, lan: Member, services) -> None:
    old = card_token(lan, services.settings.secret_key)
    Chat(app, zalo).say("đổi thẻ")
    response = cashier(app).post("/counter/find", {"q": old}, follow_redirects=True)
    assert flashes(response)[0].startswith("Thẻ này đã được thay bằng thẻ mới.")


def test_bad_amount(app: Flask, lan: Member) -> None:
    response = cashier(app).post(
        f"/counter/members/{lan.id}/earn", {"amount": "abc", "op": "x1"}, follow_redirects=True
    )
    assert "Số tiền không hợp lệ. Ví dụ: 250000 hoặc 250.000 hoặc 250k." in flashes(response)


# --- reversal -----------------------------------------------------------------------------------------


def earn_via_page(console: Console, member_id: int, amount: str, op: str) -> None:
    console.post(f"/counter/members/{member_id}/earn", {"amount": amount, "op": op})


def test_cashier_reverses_own_last_earn_within_15_minutes(
    app: Flask, zalo: ZaloFake, session: Session, lan: Member
) -> None:
    console = cashier(app)
    earn_via_page(console, lan.id, "100000", "op1")
    earn_via_page(console, lan.id, "250000", "op2")
    entries = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
    first, last = entries[0], entries[1]
    refused = console.post(f"/counter/entries/{first.id}/reverse", follow_redirects=True)
    assert "Không hoàn được: chỉ hoàn được giao dịch tích điểm gần nhất của bạn." in flashes(refused)
    other = cashier(app, "thu-ngan-2")
    refused = other.post(f"/counter/entries/{last.id}/reverse", follow_redirects=True)
    assert "Không hoàn được: chỉ hoàn được giao dịch do chính bạn tạo." in flashes(refused)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16)):
        late = console.post(f"/counter/entries/{last.id}/reverse", follow_redirects=True)
        assert "Không hoàn được: đã quá 15 phút; cần chủ cửa hàng hoàn giúp." in flashes(late)
    console = cashier(app)  # the cookie signed in the "future" is (rightly) refused once time goes back
    done = console.post(f"/counter/entries/{last.id}/reverse", follow_redirects=True)
    assert "Đã hoàn điểm của hóa đơn." in flashes(done)
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 10
    run_jobs(app)
    assert "−25 điểm: hóa đơn 250.000đ đã được hoàn/hủy — số dư 10 điểm." in chat_texts(zalo)


def test_owner_reverses_any_earn(app: Flask, session: Session, lan: Member) -> None:
    earn_via_page(cashier(app), lan.id, "100000", "op1")
    entry = session.scalars(select(LedgerEntry)).one()
    with time_machine.travel(datetime.now(UTC) + timedelta(days=2)):
        done = cashier(app, "chu").post(f"/counter/entries/{entry.id}/reverse", follow_redirects=True)
    assert "Đã hoàn điểm của hóa đơn." in flashes(done)


def test_recent_transactions_are_per_store(app: Flask, session: Session, lan: Member) -> None:
    earn_via_page(cashier(app), lan.id, "100000", "op1")
    assert "+10" in cashier(app, "thu-ngan-2").get("/counter/").get_data(as_text=True)  # same store
    assert "+10" not in cashier(app, "outlet").get("/counter/").get_data(as_text=True)


# --- vouchers -----------------------------------------------------------------------------------------


def issue_voucher(session: Session, member: Member, shop) -> Voucher:
    now = datetime.now(UTC)
    ledger.adjust(session, member.id, 200, key="gift", reason="tặng", actor=ledger.SYSTEM, now=now, expires_at=None)
    voucher = rewards.redeem(session, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="r1", now=now).voucher
    session.commit()
    return voucher


def test_use_voucher_once(app: Flask, zalo: ZaloFake, session: Session, lan: Member, shop) -> None:
    voucher = issue_voucher(session, lan, shop)
    console = cashier(app)
    shown = console.post(
        "/counter/voucher", {"code": f"{voucher.code[:4]}-{voucher.code[4:]}".lower()}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Cà phê sữa đá" in shown and "Xác nhận dùng voucher" in shown
    used = console.post(f"/counter/vouchers/{voucher.code}/use", {"op": "u1"}, follow_redirects=True)
    assert "Đã dùng voucher. ✔" in flashes(used)
    again = console.post(f"/counter/vouchers/{voucher.code}/use", {"op": "u2"}, follow_redirects=True)
    assert "Voucher này đã được sử dụng rồi." in flashes(again)
    session.expire_all()
    assert session.get(Voucher, voucher.id).status == VoucherStatus.USED
    run_jobs(app)
    assert any(
        t.startswith(f"Voucher {voucher.code[:4]}-{voucher.code[4:]} (Cà phê sữa đá) đã được sử dụng lúc")
        for t in chat_texts(zalo)
    )


def test_expired_voucher_is_refused(app: Flask, session: Session, lan: Member, shop) -> None:
    voucher = issue_voucher(session, lan, shop)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=31)):
        console = cashier(app)
        page = console.get(f"/counter/vouchers/{voucher.code}").get_data(as_text=True)
        assert "Voucher đã hết hạn." in page
        refused = console.post(f"/counter/vouchers/{voucher.code}/use", {"op": "u1"}, follow_redirects=True)
        assert "Voucher đã hết hạn, không dùng được." in flashes(refused)


def test_unknown_voucher(app: Flask, lan: Member) -> None:
    response = cashier(app).post("/counter/voucher", {"code": "ZZZZ-ZZZZ"}, follow_redirects=True)
    assert "Không tìm thấy voucher này. Kiểm tra lại mã." in flashes(response)


# --- claims -------------------------------------------------------------------------------------------


def make_claim(app: Flask, amount: str = "250000") -> Claim:
    console = cashier(app)
    response = console.post(
        "/counter/claims", {"amount": amount, "op": "c1", "bill_ref": "HD9"}, page="/counter/claims/new"
    )
    page = console.get(response.headers["Location"]).get_data(as_text=True)
    code = re.search(r'id="claim-code">#([A-Z0-9]{6})<', page)[1]
    assert "<svg" in page and f"/c/{code}" in page
    from tichdiem.extensions import services

    with app.app_context():
        with services().sessions() as s:
            return s.scalars(select(Claim).where(Claim.code == code)).one()


def test_claim_by_chat_credits_the_sender_once(app: Flask, zalo: ZaloFake, session: Session, lan: Member) -> None:
    claim = make_claim(app)
    public = app.test_client().get(f"/c/{claim.code}").get_data(as_text=True)
    assert f"#{claim.code}" in public and 'href="https://zalo.me/4024926008133882615"' in public
    chat = Chat(app, zalo)
    assert chat.texts(chat.say(f"#{claim.code.lower()}")) == ["+25 điểm từ hóa đơn 250.000đ (HD9) — số dư 25 điểm."]
    assert chat.texts(chat.say(f"mã {claim.code}")) == ["+25 điểm từ hóa đơn 250.000đ (HD9) — số dư 25 điểm."]
    other = Chat(app, zalo, "7000000000000000001")
    other.share_info(name="Minh", phone="84933333333")
    assert other.texts(other.say(f"#{claim.code}")) == [
        f"Mã {claim.code} đã được dùng rồi. Mỗi mã chỉ tích điểm được một lần."
    ]
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 25
    # The public page answers a used code exactly as an unknown one: it gives nothing away.
    used_page = app.test_client().get(f"/c/{claim.code}")
    unknown_page = app.test_client().get("/c/ZZZZZZ")
    assert used_page.status_code == unknown_page.status_code == 200
    assert used_page.get_data(as_text=True).replace(claim.code, "ZZZZZZ") == unknown_page.get_data(as_text=True)


def test_expired_claim(app: Flask, zalo: ZaloFake, lan: Member) -> None:
    claim = make_claim(app)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=25)):
        chat = Chat(app, zalo)
        assert chat.texts(chat.say(f"#{claim.code}")) == [
            f"Mã {claim.code} đã hết hạn. Bạn nhờ thu ngân tạo mã mới nhé."
        ]


def test_claim_by_a_stranger_asks_to_register_first(app: Flask, zalo: ZaloFake, shop) -> None:
    claim = make_claim(app)
    chat = Chat(app, zalo)
    sent = chat.say(f"#{claim.code}")
    assert sent[0]["text"].startswith("Để tích điểm, bạn cần là thành viên của Cà phê Sữa Đá.")
    assert sent[1]["attachment"]["payload"]["template_type"] == "request_user_info"


def test_guessing_claim_codes_is_locked_out(app: Flask, zalo: ZaloFake, session: Session, lan: Member) -> None:
    claim = make_claim(app)
    chat = Chat(app, zalo)
    for guess in ("#AAAAAA", "#BBBBBB", "#CCCCCC", "#DDDDDD"):
        assert chat.texts(chat.say(guess))[0].startswith(f'Mã "{guess[1:]}" không đúng.')
    assert chat.texts(chat.say("#EEEEEE")) == ["Bạn đã nhập sai mã quá nhiều lần. Vui lòng thử lại sau 30 phút."]
    assert chat.texts(chat.say(f"#{claim.code}"))[0].startswith("Bạn đã nhập sai mã quá nhiều lần.")
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 0
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=31)):
        assert chat.texts(chat.say(f"#{claim.code}"))[0].startswith("+25 điểm")


def test_claim_raced_by_two_members_has_one_winner(services, session: Session, shop) -> None:
    now = datetime.now(UTC)
    a = create_member(session, now=now, name="A")
    b = create_member(session, now=now, name="B")
    claim, _ = create_claim(session, 250_000, key="k", now=now)
    session.commit()
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def claim_for(name: str, member_id: int) -> None:
        with services.sessions() as s:
            barrier.wait()
            try:
                claim_points(s, member_id, claim.code, now=now, rules=ProgramRules(), tz=services.settings.tz)
                s.commit()
                results[name] = "won"
            except ClaimUsed:
                results[name] = "used"

    threads = [threading.Thread(target=claim_for, args=(n, m.id)) for n, m in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["used", "won"]
    session.expire_all()
    assert session.get(Member, a.id).points_balance + session.get(Member, b.id).points_balance == 25


def test_guessing_voucher_codes_at_the_counter_is_throttled(app: Flask, lan: Member) -> None:
    console = cashier(app)
    for i in range(10):
        response = console.post("/counter/voucher", {"code": f"ZZZZ-ZZZ{i}"}, follow_redirects=True)
        assert "Không tìm thấy voucher này. Kiểm tra lại mã." in flashes(response)
    response = console.post("/counter/voucher", {"code": "ZZZZ-ZZZZ"}, follow_redirects=True)
    assert "Nhập sai mã voucher quá nhiều lần. Vui lòng thử lại sau 10 phút." in flashes(response)


def test_failed_logins_are_limited_per_ip(app: Flask, shop) -> None:
    console = Console(app)
    for i in range(20):
        console.login(f"nobody-{i}", "sai")  # spraying many usernames from one address
    response = console.login("thu-ngan")
    assert response.status_code == 429 and "Quá nhiều lần đăng nhập sai từ máy này" in response.get_data(as_text=True)
