"""Trust at the boundary: nobody takes another member's points through the chat (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import Member, Voucher
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Chat, ZaloFake, run_jobs

USER = "8958041078911298472"


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def _member(session: Session, zalo_user_id: str = USER) -> Member:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == zalo_user_id)).one()


def _credit(session: Session, member: Member, points: int) -> None:
    now = datetime.now(UTC)
    ledger.adjust(
        session,
        member.id,
        points,
        key=f"gift-{points}",
        reason="tặng",
        actor=ledger.SYSTEM,
        now=now,
        expires_at=ProgramRules().expiry_for(now),
    )
    session.commit()


def test_two_chat_redemptions_in_a_row_give_two_vouchers(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    """SQLite reuses a deleted row's id: a key built from the question's row id returned the first voucher."""
    chat = Chat(app, zalo)
    chat.follow()
    chat.share_info(name="Trần Thị B", phone="84987654321", user_dob="30/10/1999")
    _credit(session, _member(session), 250)
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
    _credit(session, member, 120)
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
        assert "120" not in reply["text"] and "Chị Hà" not in reply["text"]
        assert reply["text"].startswith("Số 0987 654 321 đã có thẻ thành viên")  # how to finish, again


def _link(cashier, member: Member, code: str):  # type: ignore[no-untyped-def]
    page = f"/counter/members/{member.id}"
    return cashier.post(f"{page}/link", {"code": code}, page=page)


def _code_from(text: str) -> str:
    import re

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
    (answer, _card) = chat.say("sđt 0912345678")  # "not my number": a new phone registers a new card
    assert answer["text"].startswith("Đăng ký thành công!")
    assert _member(session).phone == "84912345678"
