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


# --- access, erasure, retention, the notice ----------------------------------------------------------------


def test_my_data_shows_what_the_shop_holds_and_is_recorded(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from models import DataRequest

    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678", user_dob="30/10/1999")
    (data,) = chat.say("du lieu cua toi")
    text = data["text"]
    assert "Họ tên: Lan" in text and "0912 345 678" in text and "30/10/1999" in text and "Tên Zalo: Lan Nguyễn" in text
    assert "chưa cho biết" in text
    (request,) = session.scalars(select(DataRequest)).all()
    assert (request.kind, request.status, request.channel) == ("access", "done", "chat")


def test_delete_my_account_asks_first_then_files_a_request_with_its_date(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from models import DataRequest

    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    chat.say("nhận tin")
    (question,) = chat.say("xóa tài khoản")
    assert "Trả lời CÓ để gửi yêu cầu xóa" in question["text"]
    (kept,) = chat.say("không")
    assert kept["text"].startswith("Đã giữ lại tài khoản")
    assert session.scalars(select(DataRequest)).all() == []
    chat.say("xoa tai khoan")
    (filed,) = chat.say("có")
    request = session.scalars(select(DataRequest)).one()
    due = request.due_at.astimezone(app.extensions["tichdiem"].settings.tz).strftime("%d/%m/%Y")
    assert f"sẽ xóa chậm nhất ngày {due}" in filed["text"]
    assert member_of(session).marketing_consent == "withdrawn"  # no more offers from the moment they asked


def test_erasure_leaves_no_personal_field_in_any_table_and_the_ledger_exact(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from sqlalchemy import text as sql

    from loyalty import ledger
    from models import Base, DataRequest, LedgerEntry
    from tests.helpers import credit

    referrer_chat = Chat(app, zalo, user_id="1111111111111111111")
    referrer_chat.share_info(name="Người Giới Thiệu", phone="84900000001")
    referrer = member_of(session, "1111111111111111111")
    zalo.profile("Bích Trên Zalo", user_id=USER)  # her Zalo profile, as user/detail gives it
    chat = Chat(app, zalo)
    chat.say(f"mã {referrer.code}")  # referred before joining
    chat.share_info(name="Trần Thị Bích", phone="84912345678", user_dob="30/10/1999")
    chat.say("nhận tin")
    member = member_of(session)
    cashier = login(app, "thu-ngan")
    page = f"/counter/members/{member.id}"
    cashier.post(f"{page}/earn", {"amount": "250000", "bill_ref": "HD-77", "op": "op-1"}, page=page)
    session.expire_all()
    assert member_of(session).points_balance == 25
    credit(session, member_of(session), 40, "gift-40")
    chat.say("điểm")
    chat.say("xóa tài khoản")
    chat.say("có")
    from jobs.outbox import queue_messages
    from models import OutboxMessage

    waiting = queue_messages(session, key="later", user_id=USER, messages=[{"text": "Chào Bích"}])  # not sent yet
    session.commit()
    request = session.scalars(select(DataRequest).where(DataRequest.kind == "erasure")).one()
    balance_before = member_of(session).points_balance
    owner = login(app, "chu")
    owner.post(f"/admin/privacy/requests/{request.id}/erase", {}, page="/admin/privacy/")
    session.expire_all()
    erased = session.get(Member, member.id)
    assert (erased.status, erased.name, erased.phone, erased.birthday, erased.zalo_user_id) == (
        "erased",
        "",
        None,
        None,
        None,
    )
    entries, lots = ledger.ledger_totals(session, member.id)
    assert erased.points_balance == balance_before == entries == lots > 0  # the books are unchanged
    assert session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == referrer.id)).all()  # referrer's bonus
    secrets = [
        "Trần Thị Bích",
        "Bích",
        "84912345678",
        "0912345678",
        "912345678",
        USER,
        "1999-10-30",
        "30/10/1999",
    ]
    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(sql(f"SELECT * FROM {table.name}")).mappings():
            for column, value in row.items():
                if (table.name, column) == ("webhook_events", "dedupe_key"):
                    continue  # Zalo's message id (random) or a hash; only this test's Chat builds ids from the user id
                shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                found += [(table.name, column, s) for s in secrets if s in shown]
    assert found == [], found
    assert session.get(DataRequest, request.id).status == "done"
    assert session.get(OutboxMessage, waiting[0]).status == "cancelled"  # never sent to nobody
    cashier.post(f"{page}/earn", {"amount": "100000", "op": "op-2"}, page=page)
    assert session.get(Member, member.id).points_balance == balance_before  # nobody earns as them any more


def test_raw_bodies_and_texts_are_emptied_after_the_retention_period_and_dedupe_still_holds(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from datetime import timedelta

    import time_machine

    from jobs.privacy import prune_personal_data
    from models import OutboxMessage, WebhookEvent
    from tests.helpers import post_event, text_event

    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    raw = text_event("điểm", "old-message")
    post_event(app.test_client(), raw)
    run_jobs(app)
    sent_before = len(zalo.sent_messages())
    with time_machine.travel(utcnow() + timedelta(days=91)), app.app_context():
        pruned = prune_personal_data()
        assert pruned["events"] >= 2 and pruned["messages"] >= 1
        assert prune_personal_data() == {"events": 0, "messages": 0, "uploads": 0}  # once
    session.expire_all()
    assert all(e.payload == {"pruned": True} for e in session.scalars(select(WebhookEvent)))
    assert all(m.message == {"pruned": True} for m in session.scalars(select(OutboxMessage)))
    assert post_event(app.test_client(), raw).status_code == 200  # Zalo redelivers an old event:
    run_jobs(app)
    assert len(zalo.sent_messages()) == sent_before  # still recognised, not answered twice


def test_the_notice_is_public_versioned_and_named_by_each_consent(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    client = app.test_client()
    page = text_of(client.get("/privacy"))
    assert "Cà phê Sữa Đá giữ các thông tin sau" in page and "Phiên bản v0" in page
    owner = login(app, "chu")
    owner.post("/admin/privacy/notice", {"text": "{shop} chỉ giữ tên và số điện thoại."}, page="/admin/privacy/")
    assert "Cà phê Sữa Đá chỉ giữ tên và số điện thoại." in text_of(client.get("/privacy"))
    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    chat.say("nhận tin")
    assert session.scalars(select(Consent)).one().notice_version == "v1"
    csv_text = owner.get("/admin/privacy/consents.csv").get_data(as_text=True)
    assert "Mã thành viên,Đồng ý,Phiên bản thông báo" in csv_text and ",có,v1,chat," in csv_text
    assert login(app, "mkt").get("/admin/privacy/").status_code == 403


def test_an_overdue_erasure_is_on_the_owners_banner_not_in_healthz(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from datetime import UTC, datetime, timedelta

    import time_machine

    from tests.conftest import HEALTH

    chat = Chat(app, zalo)
    chat.share_info(name="Lan", phone="84912345678")
    chat.say("xóa tài khoản")
    chat.say("có")
    with time_machine.travel(datetime.now(UTC) + timedelta(days=16)):
        owner = login(app, "chu")
        assert "yêu cầu xóa dữ liệu của khách đã quá hạn" in text_of(owner.get("/admin/"))
        assert app.test_client().get("/healthz", headers=HEALTH).json["status"] == "ok"


def test_the_owners_member_page_shows_consent(app: Flask, session: Session, shop) -> None:
    member = add_member(session, "Có", uid="m-yes")
    page = text_of(login(app, "chu").get(f"/admin/members/{member.id}"))
    assert "Nhận ưu đãi: <strong>đồng ý</strong>" in page


def test_the_demo_shows_the_notice_an_opt_out_and_an_erasure_request(demo) -> None:  # type: ignore[no-untyped-def]
    """Issue 19's demo, through the emulator as a customer would: the notice at registration, "hủy nhận tin",
    then "xóa tài khoản" and its confirmation; the owner's requests page lists it with its due date."""
    import requests

    user = demo.customer("Đỗ Minh Khoa", "0977000111", "02/03/1990")
    for action in ({"action": "follow"}, {"action": "share_info"}):
        demo.act(user, **action)

    def oa_texts() -> list[str]:
        return [m.get("text", "") for m in demo.state.transcripts[user] if m.get("from") == "oa"]

    assert any("/privacy" in t for t in oa_texts())  # the notice and its link, after registering
    for text in ("huy nhan tin", "xóa tài khoản", "CÓ"):
        demo.act(user, action="text", text=text)
    texts = oa_texts()
    assert any(t.startswith("Đã dừng gửi ưu đãi") for t in texts), texts[-4:]
    assert any("sẽ xóa chậm nhất ngày" in t for t in texts), texts[-2:]
    http = requests.Session()
    page = http.get(f"{demo.base}/login").text
    csrf = __import__("re").search(r'name="csrf_token" value="([^"]+)"', page)[1]
    http.post(f"{demo.base}/login", data={"username": "chu", "password": "demo1234", "csrf_token": csrf})
    assert "Đỗ Minh Khoa" in http.get(f"{demo.base}/admin/privacy/").text
    assert http.get(f"{demo.base}/privacy").ok
