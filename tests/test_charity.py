"""Charity (issue 18) through its real paths: members give points in the chat with a "CÓ", once; the shop's
matching rule; the console's causes and the public report that names nobody. Both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.staff import create_staff
from loyalty import charity, ledger
from loyalty.errors import InsufficientPoints
from loyalty.members import create_member
from models import Cause, Donation, EntryKind, LedgerEntry, Member
from tests.console_support import login, text_of
from tests.helpers import Chat, ZaloFake, seed_shop

UID = "8958041078911298472"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    create_staff(session, username="thu-ngan", password="mat-khau-123", role="cashier")
    session.commit()
    return shop


@pytest.fixture
def lan(session: Session, shop: dict) -> Member:
    member = create_member(session, now=NOW, name="Lan", phone="84912345678", zalo_user_id=UID)
    ledger.adjust(session, member.id, 300, key="gift", reason="tặng", actor=ledger.SYSTEM, now=NOW, expires_at=None)
    session.commit()
    return member


@pytest.fixture
def coats(session: Session) -> Cause:
    cause = Cause(name="Áo ấm cho em", goal_points=1000, match_pct=100, match_cap_points=60)
    session.add(cause)
    session.commit()
    return cause


def balance(session: Session, member: Member) -> int:
    session.expire_all()
    fresh = session.get(Member, member.id)
    assert fresh is not None
    return fresh.points_balance


def test_a_member_gives_points_in_the_chat_once(
    app: Flask, zalo: ZaloFake, session: Session, coats: Cause, lan: Member
) -> None:
    chat = Chat(app, zalo)
    listing = chat.texts(chat.say("ủng hộ"))[0]
    assert "1. Áo ấm cho em: ░░░░░░░░░░ 0/1.000 điểm (0%), 0 người ủng hộ" in listing
    assert 'Nhắn "ủng hộ 50" để tặng 50 điểm. 1 điểm = 1.000đ.' in listing
    (question,) = chat.texts(chat.say("UNG HO 50"))[:1]
    assert question == "Bạn muốn ủng hộ 50 điểm (50.000đ) cho “Áo ấm cho em”? Trả lời CÓ để xác nhận, KHÔNG để hủy."
    thanks = chat.texts(chat.say("có"))[0]
    assert thanks.splitlines() == [
        "💚 Cảm ơn bạn đã ủng hộ 50 điểm (50.000đ) cho “Áo ấm cho em”!",
        "▓░░░░░░░░░ 100/1.000 điểm (10%) từ 1 người, Cà phê Sữa Đá góp thêm 50 điểm.",
        "Số dư của bạn: 250 điểm.",
    ]
    assert chat.texts(chat.say("có"))[0].startswith("Không có yêu cầu nào đang chờ xác nhận.")  # a second tap
    assert balance(session, lan) == 250
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.DONATE)).one()
    assert entry.points == -50 and entry.source_ref == f"cause:{coats.id}"
    history = chat.texts(chat.say("lịch sử"))[0]
    assert "−50 điểm — ủng hộ Áo ấm cho em — " in history


def test_no_cancels_and_a_balance_too_small_is_told(
    app: Flask, zalo: ZaloFake, session: Session, coats: Cause, lan: Member
) -> None:
    chat = Chat(app, zalo)
    chat.say("ủng hộ 40")
    assert chat.texts(chat.say("không"))[0] == "Đã hủy, điểm của bạn vẫn giữ nguyên."
    assert chat.texts(chat.say("ủng hộ 500"))[0] == "Bạn có 300 điểm, chưa đủ để ủng hộ 500 điểm."
    assert session.scalar(select(func.count()).select_from(Donation)) == 0


def test_with_several_causes_the_member_picks_one_by_number(
    app: Flask, zalo: ZaloFake, session: Session, coats: Cause, lan: Member
) -> None:
    books = Cause(name="Sách cho thư viện", goal_points=None)
    session.add_all([books, Cause(name="Đã xong", ends_on=date(2025, 1, 1))])
    session.commit()
    chat = Chat(app, zalo)
    listing = chat.texts(chat.say("ủng hộ 30"))[0]  # which one?
    assert "\n2. Sách cho thư viện: 0 điểm, 0 người ủng hộ\n" in listing and "Đã xong" not in listing
    assert 'thêm "số 2" để chọn chương trình' in listing
    assert "“Sách cho thư viện”" in chat.texts(chat.say("ủng hộ 30 số 2"))[0]
    chat.say("CÓ")
    assert session.scalars(select(Donation)).one().cause_id == books.id


def test_donations_are_idempotent_and_matching_is_capped(session: Session, coats: Cause, lan: Member) -> None:
    today = NOW.date()
    first = charity.donate(session, lan.id, coats.id, 40, key="k1", now=NOW, today=today)
    again = charity.donate(session, lan.id, coats.id, 40, key="k1", now=NOW, today=today)
    assert again.replayed and again.donation.id == first.donation.id
    charity.donate(session, lan.id, coats.id, 100, key="k2", now=NOW, today=today)
    session.commit()
    progress = charity.progress(session, coats)
    assert (progress.points, progress.donors, progress.matched, progress.total) == (140, 1, 60, 200)
    assert progress.percent == 20 and progress.bar() == "▓▓░░░░░░░░"
    with pytest.raises(InsufficientPoints):
        charity.donate(session, lan.id, coats.id, 500, key="k3", now=NOW, today=today)
    session.rollback()
    coats.ends_on = date(2026, 11, 22)
    session.commit()
    with pytest.raises(charity.CauseClosed):
        charity.donate(session, lan.id, coats.id, 5, key="k4", now=NOW, today=today)
    session.rollback()
    assert balance(session, lan) == 160


def test_the_console_runs_causes_and_publishes_a_report_without_names(
    app: Flask, session: Session, coats: Cause, lan: Member
) -> None:
    owner = login(app, "chu")
    new = "/admin/causes/new"
    assert "Tên chương trình cần 1-120 ký tự." in text_of(owner.post(new, {"name": "", "match_pct": "5000"}, page=new))
    saved = owner.post(
        new, {"name": "Trồng cây", "goal_points": "2.000", "is_active": "on"}, page=new, follow_redirects=True
    )
    assert "Đã lưu chương trình “Trồng cây”." in text_of(saved)
    charity.donate(session, lan.id, coats.id, 50, key="k1", now=NOW, today=NOW.date())
    session.commit()
    listing = text_of(owner.get("/admin/causes/"))
    assert "Áo ấm cho em" in listing and "50 điểm</td><td>50 điểm</td> <td>100.000đ</td><td>1</td>" in listing
    report = text_of(app.test_client().get(f"/ung-ho/{coats.id}"))  # public: no login
    assert "100 điểm = 100.000đ" in report and "Lan" not in report and "0912" not in report
    assert app.test_client().get("/ung-ho/999999").status_code == 404
    assert login(app, "thu-ngan").get("/admin/causes/").status_code in (302, 403)
