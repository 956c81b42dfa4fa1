"""Scripted conversations, each through webhook -> job -> the mocked Zalo API, asserting what Zalo receives."""

from datetime import UTC, date, datetime, timedelta

import pytest
import responses
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.cards import InvalidCard, RevokedCard, card_token, member_from_token
from loyalty.members import create_member
from models import Member, Voucher, VoucherStatus
from tests.helpers import Chat, ZaloFake, credit, seed_shop

USER = "8958041078911298472"
OTHER = "7000000000000000001"
UPLOAD_URL = "https://openapi.zalo.me/v2.0/oa/upload/image"


@pytest.fixture
def shop(session: Session) -> dict:
    return seed_shop(session)


def register(chat: Chat, **info) -> list[dict]:
    chat.follow()
    return chat.share_info(**({"name": "Trần Thị B", "phone": "84987654321", "user_dob": "30/10/1999"} | info))


def member(session: Session, zalo_user_id: str = USER) -> Member:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == zalo_user_id)).one()


# --- registration -----------------------------------------------------------------------------------


def test_shared_info_registers_and_sends_the_card(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    sent = register(chat)
    assert sent[0]["text"] == (
        "Đăng ký thành công! 🎉 Chào Trần Thị B, bạn đã là thành viên Cà phê Sữa Đá, hạng Thành viên.\n"
        "Mình gửi bạn thẻ thành viên ngay sau đây: đưa mã QR cho thu ngân mỗi lần thanh toán để tích điểm."
    )
    assert sent[1] == {
        "text": "Thẻ thành viên của Trần Thị B — đưa mã QR cho thu ngân khi thanh toán.",
        "attachment": {
            "type": "template",
            "payload": {"template_type": "media", "elements": [{"media_type": "image", "attachment_id": "att-1"}]},
        },
    }
    (upload,) = zalo.calls_to(UPLOAD_URL)
    assert upload.request.headers["access_token"] == "AT-initial"
    assert b"image/png" in upload.request.body and b'name="file"' in upload.request.body
    m = member(session)
    assert (m.name, m.phone, m.birthday, m.source) == ("Trần Thị B", "84987654321", date(1999, 10, 30), "zalo")


def test_older_info_shape_without_birthday_asks_for_it(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    sent = register(Chat(app, zalo), name="Nguyễn Văn A", phone="84912345678", user_dob="")
    assert 'Nhắn "sinh nhật 12/05/1990" để nhận quà sinh nhật nhé.' in sent[0]["text"]
    assert member(session).birthday is None


def test_member_imported_with_the_same_phone_is_not_duplicated_and_waits_for_the_counter(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    imported = create_member(session, now=datetime.now(UTC), name="Chị B", phone="84987654321", source="import")
    session.commit()
    credit(session, imported, 120, "import-balance")
    sent = register(Chat(app, zalo))
    assert sent[0]["text"].startswith(
        "Số 0987 654 321 đã có thẻ thành viên tại Cà phê Sữa Đá. Để bảo vệ điểm của chủ thẻ, mình cần xác nhận"
    )
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    session.expire_all()
    assert session.get(Member, imported.id).zalo_user_id is None  # linked only at the counter (tests/test_trust.py)


def test_phone_of_another_zalo_account_is_refused(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    register(Chat(app, zalo, OTHER))
    sent = register(Chat(app, zalo))
    assert sent == [
        {
            "text": "Số điện thoại 0987 654 321 đã được một tài khoản Zalo khác dùng để đăng ký. Nếu đây "
            "là số của bạn, vui lòng liên hệ cửa hàng để được hỗ trợ."
        }
    ]
    assert session.scalar(select(func.count()).select_from(Member)) == 1


@pytest.mark.parametrize(
    "typed", ["sđt 0912 345 678", "SDT +84912345678", "#sdt 84912345678", "số điện thoại 0912.345.678"]
)
def test_register_by_typing_the_phone(app: Flask, zalo: ZaloFake, session: Session, shop, typed: str) -> None:
    sent = Chat(app, zalo).say(typed)
    assert sent[0]["text"].startswith("Đăng ký thành công! 🎉 Chào Lan Nguyễn")  # name from the Zalo profile
    assert "attachment_id" in str(sent[1])
    assert member(session).phone == "84912345678"


@pytest.mark.parametrize("typed", ["sđt abc", "sđt 12345", "sđt 0112345678", "sđt"])
def test_wrong_phone_says_what_was_wrong(app: Flask, zalo: ZaloFake, shop, typed: str) -> None:
    (reply,) = Chat(app, zalo).say(typed)
    shown = typed[4:] or "(trống)"
    assert reply == {"text": f'Số điện thoại "{shown}" không hợp lệ. Bạn nhắn lại theo mẫu: sđt 0912345678'}


def test_member_changes_phone(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    assert chat.texts(chat.say("sđt 0912345678")) == ["Đã lưu số điện thoại 0912 345 678."]
    assert member(session).phone == "84912345678"


@pytest.mark.parametrize(
    ("typed", "answer", "stored"),
    [
        ("sinh nhật 12/05/1990", "Đã lưu ngày sinh 12/05/1990.", date(1990, 5, 12)),
        ("Sinh Nhat 1-2-1985", "Đã lưu ngày sinh 01/02/1985.", date(1985, 2, 1)),
        ("ngày sinh 29/02", "Đã lưu ngày sinh 29/02.", date(1904, 2, 29)),
        ("sinh nhật 31/02/1990", 'Ngày "31/02/1990" không có trên lịch.', None),
        ("sinh nhật 12/05/2999", 'Năm sinh trong "12/05/2999" không hợp lệ.', None),
        ("sinh nhật mai", 'Mình chưa đọc được ngày sinh "mai".', None),
    ],
)
def test_birthday(app: Flask, zalo: ZaloFake, session: Session, shop, typed: str, answer: str, stored) -> None:
    chat = Chat(app, zalo)
    register(chat, user_dob="")
    (reply,) = chat.say(typed)
    assert reply["text"].startswith(answer)
    assert member(session).birthday == stored


def test_name(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    assert chat.texts(chat.say("tên   Nguyễn  Thị   Mai ")) == ["Đã lưu tên Nguyễn Thị Mai."]
    assert member(session).name == "Nguyễn Thị Mai"


def test_refollow_restores_member_and_balance(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 1250, "gift")
    chat.unfollow()
    (back,) = chat.follow()
    assert back["text"] == ("Chào mừng Trần Thị B quay lại Cà phê Sữa Đá! 👋\nBạn đang có 1.250 điểm, hạng Thành viên.")
    assert session.scalar(select(func.count()).select_from(Member)) == 1


def test_member_commands_ask_strangers_to_register(app: Flask, zalo: ZaloFake, shop) -> None:
    sent = Chat(app, zalo).say("điểm")
    assert sent[0]["text"].startswith("Bạn chưa là thành viên của Cà phê Sữa Đá.")
    assert sent[1]["attachment"]["payload"]["template_type"] == "request_user_info"


# --- account commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["điểm", "DIEM", "#DIEM", "Điểm", "ĐIỂM", "  diem  ", "số dư"])
def test_balance_any_spelling(app: Flask, zalo: ZaloFake, session: Session, shop, typed: str) -> None:
    chat = Chat(app, zalo)
    register(chat)
    m = member(session)
    now = datetime.now(UTC)
    credit(session, m, 1000, "old", when=now - timedelta(days=350))  # expires in ~15 days
    credit(session, m, 250, "new", when=now)
    (reply,) = chat.say(typed)
    expiry = (now - timedelta(days=350)).replace(year=now.year + 1 if now.month > 1 else now.year)
    lines = reply["text"].split("\n")
    assert lines[:3] == ["Bạn đang có 1.250 điểm.", "Hạng: Thành viên", "Còn 500 điểm để lên Bạc."]
    assert lines[3].startswith("⏳ 1.000 điểm sẽ hết hạn ngày ") and len(lines) == 4
    assert expiry  # the date itself is checked in test_ledger
    assert [b["payload"] for b in reply["attachment"]["payload"]["buttons"]] == ["#QUA", "#THE", "#LICHSU"]


def test_history(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    assert chat.texts(chat.say("lịch sử"))[0].startswith("Bạn chưa có giao dịch điểm nào.")
    for i in range(12):
        credit(session, member(session), i + 1, f"k{i}")
    (reply,) = chat.say("lich su")
    lines = reply["text"].split("\n")
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m")
    assert lines[0] == "10 giao dịch gần nhất:"
    assert lines[1] == f"+12 điểm — tặng điểm — {today}" and len(lines) == 11


def test_tier_ladder_with_counts(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from dataclasses import replace

    from loyalty.program import load_rules, save_rules

    chat = Chat(app, zalo)
    register(chat)
    (reply,) = chat.say("hạng")
    text = reply["text"]
    assert text.startswith("Các hạng thành viên của Cà phê Sữa Đá:")
    assert "👉 Thành viên — từ 0 điểm (hạng của bạn)" in text  # how many members a tier has: off by default
    assert "• Kim cương — từ 5.000 điểm" in text and "giảm 5% điểm đổi quà" in text and "0 thành viên" not in text
    assert text.endswith("Hạng xét theo điểm tích được trong 12 tháng gần nhất.")

    rules = load_rules(session)
    save_rules(session, replace(rules, automations=replace(rules.automations, tier_counts_shown=True)))
    session.commit()
    (reply,) = chat.say("hạng")
    assert "👉 Thành viên — từ 0 điểm — 1 thành viên (hạng của bạn)" in reply["text"]
    assert "• Kim cương — từ 5.000 điểm — 0 thành viên" in reply["text"]


def test_rewards_list_and_vouchers(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    (empty,) = chat.say("quà")
    assert empty["text"].startswith("Bạn có 0 điểm, chưa đủ để đổi quà. Quà rẻ nhất: Bánh ngọt — 60 điểm.")
    credit(session, member(session), 150, "g")
    (listing,) = chat.say("QUA")
    assert listing["text"].split("\n") == [
        "Quà bạn đổi được ngay (bạn có 150 điểm):",
        "1. Bánh ngọt — 60 điểm",
        "2. Cà phê sữa đá — 100 điểm",
        "",
        'Nhắn "đổi <số>" để đổi, ví dụ: đổi 1',
        "Cần thêm điểm: 1 quà khác.",
    ]


def test_redeem_with_confirmation(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 250, "g")
    (question,) = chat.say("đổi 2")
    assert question["text"] == (
        "Trả lời CÓ để đổi 100 điểm lấy Cà phê sữa đá (còn 150 điểm sau khi đổi). Trả lời KHÔNG để hủy."
    )
    assert [b["payload"] for b in question["attachment"]["payload"]["buttons"]] == ["CÓ", "KHÔNG"]
    (done,) = chat.say("có")
    voucher = session.scalars(select(Voucher)).one()
    pretty = f"{voucher.code[:4]}-{voucher.code[4:]}"
    expires = voucher.expires_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Ho_Chi_Minh"))
    assert done["text"] == (
        f"Đổi quà thành công! 🎁\nCà phê sữa đá\nMã voucher: {pretty} — hạn dùng đến "
        f"{expires:%d/%m/%Y}.\nĐưa mã này cho thu ngân khi dùng. Bạn còn 150 điểm."
    )
    assert chat.texts(chat.say("CÓ"))[0].startswith("Không có yêu cầu nào đang chờ xác nhận.")  # double tap
    assert member(session).points_balance == 150
    (listing,) = chat.say("quà")
    assert f"• {pretty} — Cà phê sữa đá — hạn {expires:%d/%m/%Y}" in listing["text"]


def test_redeem_by_name_and_cancel(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 250, "g")
    assert chat.texts(chat.say("đổi CA PHE"))[0].startswith("Trả lời CÓ để đổi 100 điểm lấy Cà phê sữa đá")
    assert chat.texts(chat.say("không")) == ["Đã hủy, điểm của bạn vẫn giữ nguyên."]
    assert chat.texts(chat.say("đổi bánh"))[0].startswith("Trả lời CÓ để đổi 60 điểm lấy Bánh ngọt")
    assert chat.texts(chat.say("điểm"))[0].startswith("Bạn đang có 250 điểm.")  # another command drops the question
    assert chat.texts(chat.say("có"))[0].startswith("Không có yêu cầu nào")
    assert session.scalar(select(func.count()).select_from(Voucher)) == 0


def test_redeem_confirmation_times_out(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 250, "g")
    chat.say("đổi 1")
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11)):
        assert chat.texts(chat.say("có"))[0].startswith("Không có yêu cầu nào")
    assert member(session).points_balance == 250


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("đổi 9", 'Mình không tìm thấy quà "9".'),
        ("đổi trà sữa", 'Mình không tìm thấy quà "trà sữa".'),
        ("đổi", 'Bạn nhắn "đổi <số>" theo số thứ tự'),
        ("đổi 3", "Bạn cần 1.000 điểm để đổi Voucher 100.000đ, hiện có 250 điểm (còn thiếu 750 điểm)."),
    ],
)
def test_redeem_refusals(app: Flask, zalo: ZaloFake, session: Session, shop, typed: str, answer: str) -> None:
    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 250, "g")
    assert chat.texts(chat.say(typed))[0].startswith(answer)


def test_blocked_member(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from loyalty.members import set_blocked

    chat = Chat(app, zalo)
    register(chat)
    set_blocked(session, member(session).id, True)
    session.commit()
    assert chat.texts(chat.say("điểm"))[0].startswith("Tài khoản thành viên của bạn đang tạm khóa.")


# --- the member card ----------------------------------------------------------------------------------


def test_card_upload_is_reused_while_unchanged(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)  # upload 1
    for typed in ("thẻ", "THE", "#THE", "card"):
        (card,) = chat.say(typed)
        assert card["attachment"]["payload"]["elements"][0]["attachment_id"] == "att-1"
    assert len(zalo.calls_to(UPLOAD_URL)) == 1
    credit(session, member(session), 10, "g")  # the points on the card change: a new image
    chat.say("thẻ")
    assert len(zalo.calls_to(UPLOAD_URL)) == 2


def test_expired_upload_is_uploaded_again(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    import json

    chat = Chat(app, zalo)
    register(chat)  # uploads att-1
    cs_url = "https://openapi.zalo.me/v3.0/oa/message/cs"

    def answer(request):  # Zalo has forgotten att-1 (uploads live about 7 days)
        elements = json.loads(request.body)["message"].get("attachment", {}).get("payload", {}).get("elements", [{}])
        if elements[0].get("attachment_id") == "att-1":
            return 200, {}, json.dumps({"error": -100, "message": "The attachment has expired"})
        return 200, {}, json.dumps({"error": 0, "data": {"message_id": "m-ok"}})

    zalo.mock.remove(responses.POST, cs_url)
    zalo.mock.add_callback(responses.POST, cs_url, callback=answer)
    zalo.mock.upsert(responses.POST, UPLOAD_URL, json={"error": 0, "data": {"attachment_id": "att-2"}})
    tried, sent = chat.say("thẻ")
    assert tried["attachment"]["payload"]["elements"][0]["attachment_id"] == "att-1"
    assert sent["attachment"]["payload"]["elements"][0]["attachment_id"] == "att-2"
    assert len(zalo.calls_to(UPLOAD_URL)) == 2


def test_rotating_the_card_revokes_the_old_token(app: Flask, zalo: ZaloFake, session: Session, shop, services) -> None:
    chat = Chat(app, zalo)
    register(chat)
    secret = services.settings.secret_key
    old_token = card_token(member(session), secret)
    assert member_from_token(session, old_token, secret).zalo_user_id == USER
    sent = chat.say("đổi thẻ")
    assert sent[0]["text"].startswith("Đã đổi sang thẻ mới.") and "attachment" in sent[1]
    with pytest.raises(RevokedCard):
        member_from_token(session, old_token, secret)
    assert member_from_token(session, card_token(member(session), secret), secret).zalo_user_id == USER


def test_forged_tokens_are_refused(session: Session, shop) -> None:
    m = create_member(session, now=datetime.now(UTC), name="X")
    session.commit()
    good = card_token(m, "secret")
    for forged in (
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        card_token(m, "other-secret"),
        f"TD-{m.id + 1}-1-{good.rsplit('-', 1)[1]}",
        "84912345678",
        "",
        "TD-1-1-",
    ):
        with pytest.raises(InvalidCard):
            member_from_token(session, forged, "secret")


def test_card_png_decodes_to_the_token(app: Flask, zalo: ZaloFake, session: Session, shop, services) -> None:
    import io

    import zxingcpp
    from PIL import Image

    chat = Chat(app, zalo)
    register(chat)
    m = member(session)
    png = app.extensions["tichdiem"].cards.render(m.id)
    assert len(png) < 1_000_000 and png.startswith(b"\x89PNG")
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert result.text == card_token(m, services.settings.secret_key)
    assert member_from_token(session, result.text, services.settings.secret_key).id == m.id


# --- referrals ----------------------------------------------------------------------------------------


def test_referral_info_and_code_before_registering(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    referrer_chat = Chat(app, zalo, OTHER)
    register(referrer_chat, phone="84911111111")
    code = member(session, OTHER).code
    (info,) = referrer_chat.say("giới thiệu")
    assert info["text"].startswith(
        f"Mã giới thiệu của bạn: {code}\nMỗi người bạn giới thiệu mua hàng lần đầu, bạn nhận 50 điểm."
    )
    assert f'Mở http://127.0.0.1:5000/r/{code} rồi làm theo hướng dẫn"' in info["text"]

    newbie = Chat(app, zalo)
    pending = newbie.say(f"mã {code.lower()}")
    assert pending[0]["text"].startswith(f"Đã ghi nhận mã giới thiệu {code}.")
    sent = newbie.share_info(name="Bé Na", phone="84922222222")
    assert "Cảm ơn bạn! Bạn được Trần Thị B giới thiệu. Trần Thị B sẽ nhận thưởng khi bạn mua hàng lần đầu." in [
        m.get("text") for m in sent
    ]
    assert member(session).referred_by_id == member(session, OTHER).id


def test_referral_code_as_the_first_message(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    register(Chat(app, zalo, OTHER), phone="84911111111")
    code = member(session, OTHER).code
    newbie = Chat(app, zalo)
    assert newbie.texts(newbie.say(code))[0].startswith(f"Đã ghi nhận mã giới thiệu {code}.")


def test_wrong_or_own_referral_code(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    chat = Chat(app, zalo)
    register(chat)
    assert chat.texts(chat.say("mã ZZZZZZ")) == [
        'Mã "ZZZZZZ" không đúng. Bạn kiểm tra lại mã (trên hóa đơn, màn hình thu ngân hoặc lời mời của bạn bè) '
        "giúp mình nhé."
    ]
    assert chat.texts(chat.say("mã ZZ")) == ['Mã giới thiệu "ZZ" không đúng. Bạn kiểm tra lại giúp mình nhé.']
    own = member(session).code
    assert chat.texts(chat.say(f"mã {own}")) == ["Bạn không thể dùng mã giới thiệu của chính mình."]


def test_voucher_from_chat_is_usable_once(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from loyalty.rewards import use_voucher

    chat = Chat(app, zalo)
    register(chat)
    credit(session, member(session), 100, "g")
    chat.say("đổi 2")
    chat.say("CÓ")
    voucher = session.scalars(select(Voucher)).one()
    use_voucher(session, voucher.code, key="counter-1", now=datetime.now(UTC))
    session.commit()
    assert session.get(Voucher, voucher.id).status == VoucherStatus.USED
