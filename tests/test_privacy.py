"""Marketing consent (issue 19): recorded append-only, asked once, obeyed by every marketing path."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import automations, broadcasts
from loyalty import member_import
from loyalty.consent import record_consent
from loyalty.segments import Segment
from marketing import campaigns
from models import AuditLog, Broadcast, Consent, Member, ZaloUser, utcnow
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Chat, ZaloFake, run_jobs
from tests.test_marketing import add_member, configure, texts_to

USER = "8958041078911298472"


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def member_of(session: Session, uid: str = USER) -> Member:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == uid)).one()


def test_the_chat_asks_once_and_the_answer_is_logged_append_only(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    chat = Chat(app, zalo)
    chat.follow()
    *_, question = chat.share_info(name="Lan", phone="84912345678")
    assert "Bạn có muốn nhận ưu đãi" in question["text"] and "/privacy" in question["text"]
    titles = [b["title"] for b in question["attachment"]["payload"]["buttons"]] if "attachment" in question else []
    assert titles == ["Nhận ưu đãi", "Không nhận"]
    assert member_of(session).marketing_consent == "unknown"
    (balance,) = chat.say("điểm")  # asked once: not again
    assert "ưu đãi" not in balance["text"]
    (on,) = chat.say("NHAN TIN")  # without diacritics, any case
    assert on["text"].startswith("Đã ghi nhận: bạn đồng ý nhận ưu đãi")
    (off,) = chat.say("hủy nhận tin")
    assert off["text"].startswith("Đã dừng gửi ưu đãi cho bạn.")
    chat.say("nhận tin")
    chat.say("dừng")
    chat.say("dùng 50 điểm")  # folds like "dừng" but is not the bare word: no withdrawal
    log = session.scalars(select(Consent).order_by(Consent.id)).all()
    assert [c.granted for c in log] == [True, False, True, False]
    assert {(c.channel, c.actor, c.notice_version, c.zalo_user_id) for c in log} == {
        ("chat", f"chat:{USER}", "v0", USER)  # the built-in notice: the owner has not written one
    }
    first = (log[0].id, log[0].granted, log[0].created_at)
    chat.say("nhận tin")
    session.expire_all()
    again = session.get(Consent, first[0])
    assert (again.id, again.granted, again.created_at) == first  # earlier records never change
    assert member_of(session).marketing_consent == "granted"


def test_no_offer_reaches_a_member_who_did_not_agree_but_their_own_points_do(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    zalo.accept_messages()
    add_member(session, "Có", uid="u-yes")
    add_member(session, "Chưa", uid="u-unknown", consent=False)
    no = add_member(session, "Không", uid="u-no")
    record_consent(session, no, granted=False, channel="chat", actor="chat:u-no", now=utcnow())
    session.commit()
    with app.app_context():
        b = campaigns.create_broadcast(
            session, name="x", text="Ưu đãi cho {ten}", segment=Segment(), send_at=None, now=utcnow(), promotional=False
        )
        session.commit()
        broadcasts.start_due_broadcasts()
    run_jobs(app)
    assert texts_to(zalo, "u-yes") == ["Ưu đãi cho Có"]
    assert texts_to(zalo, "u-unknown") == texts_to(zalo, "u-no") == []
    session.expire_all()
    assert session.get(Broadcast, b.id).left_out_no_consent == 2
    page = text_of(login(app, "mkt").get(f"/admin/broadcasts/{b.id}"))
    assert "2 thành viên không nhận vì chưa đồng ý nhận ưu đãi" in page


def test_birthday_offers_need_consent(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    configure(session, birthday_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    today = utcnow().astimezone(app.extensions["tichdiem"].settings.tz).date().replace(year=1996)
    add_member(session, "Có", uid="b-yes", birthday=today)
    add_member(session, "Chưa", uid="b-unknown", birthday=today, consent=False)
    with app.app_context():
        assert automations.birthday_offers() == 1
    run_jobs(app)
    assert texts_to(zalo, "b-yes") and texts_to(zalo, "b-unknown") == []


def test_the_follower_audience_leaves_out_members_without_consent_but_invites_others(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from loyalty.segments import audience_size

    add_member(session, "Có", uid="f-yes")
    add_member(session, "Chưa", uid="f-unknown", consent=False)
    session.add(ZaloUser(user_id="f-guest", is_follower=True, created_at=utcnow()))
    session.commit()
    assert audience_size(session, Segment(followers=True), utcnow()) == 2  # the member who agreed, the guest


def test_the_preview_counts_who_is_left_out(app: Flask, session: Session, shop) -> None:
    add_member(session, "Có", uid="p-yes")
    add_member(session, "Chưa", uid="p-unknown", consent=False)
    form = {"name": "x", "text": "Chào {ten}", "when": "now", "action": "preview"}
    page = text_of(login(app, "mkt").post("/admin/broadcasts/new", form, page="/admin/broadcasts/new"))
    assert '<strong id="audience-size">1</strong> thành viên' in page
    assert "1 thành viên khác không nhận vì chưa đồng ý nhận ưu đãi" in page


def test_the_cashier_records_consent_given_in_person(app: Flask, session: Session, shop) -> None:
    from loyalty.members import create_member

    member = create_member(session, now=utcnow(), name="Minh", phone="84933333333", source="import")
    session.commit()
    cashier = login(app, "thu-ngan")
    page = f"/counter/members/{member.id}"
    assert "chưa cho biết" in text_of(cashier.get(page))
    cashier.post(f"{page}/consent", {"granted": "1"}, page=page)
    cashier.post(f"{page}/consent", {"granted": "1"}, page=page)  # a double click records once
    session.expire_all()
    assert session.get(Member, member.id).marketing_consent == "granted"
    (record,) = session.scalars(select(Consent)).all()
    assert record.channel == "counter" and record.actor.startswith("staff:")
    assert session.scalars(select(AuditLog.action)).all() == ["consent_grant"]


def test_an_import_never_grants_consent(app: Flask, session: Session, shop) -> None:
    """Even a column that says so: consent is the customer's own act, recorded where they give it."""
    add_member(session, "Đã hủy", uid="i-no", phone="84911111111", consent=False)
    withdrawn = member_of(session, "i-no")
    record_consent(session, withdrawn, granted=False, channel="chat", actor="chat:i-no", now=utcnow())
    session.commit()
    sheet = "Tên,Số điện thoại,Nhận tin\nMới,0922222222,có\nĐã hủy,0911111111,có\n".encode()
    columns, rows = member_import.data_rows(member_import.read_table("ds.csv", sheet))
    planned = member_import.plan_rows(session, columns, rows, date(2026, 11, 25), overwrite=True)
    member_import.apply_rows(session, planned, utcnow())
    session.commit()
    states = dict(session.execute(select(Member.name, Member.marketing_consent)).all())
    assert states == {"Mới": "unknown", "Đã hủy": "withdrawn"}
    assert len(session.scalars(select(Consent)).all()) == 1  # only the withdrawal
