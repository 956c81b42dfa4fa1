"""ZBS templates (issue 21): typed parameters, registered per purpose, sent by UID or by phone."""

from __future__ import annotations

import json
from datetime import date

import pytest
import responses
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import automations
from models import AuditLog, Member, OutboxMessage, ZaloTemplate, utcnow
from tests.conftest import Demo
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import OPENAPI, ZaloFake, run_jobs
from tests.test_marketing import add_member, configure
from zalo.templates import TemplateDataError, template_data

ZNS = "https://business.openapi.zalo.me"
BY_PHONE = f"{ZNS}/message/template"
BY_UID = "https://openapi.zalo.me/v3.0/oa/message/template"
INFO = f"{ZNS}/template/info/v2"
# listParams as /template/info/v2 gives them (field names as in the sources of shared/zalo-platform.md §4)
BIRTHDAY_PARAMS = [
    {"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30, "minLength": 0, "acceptNull": False},
    {"name": "voucher_code", "require": True, "type": "STRING", "maxLength": 30, "minLength": 0, "acceptNull": False},
    {"name": "expiry_date", "require": True, "type": "DATE", "maxLength": 20, "minLength": 0, "acceptNull": False},
    {"name": "points", "require": False, "type": "NUMBER", "maxLength": 20, "minLength": 0, "acceptNull": True},
]
BIRTHDAY_MAPPING = {"customer_name": "ten", "voucher_code": "ma", "expiry_date": "han", "points": "diem"}


# --- the values, checked as Zalo checks them -----------------------------------------------------------------


def test_values_fill_the_typed_parameters() -> None:
    values = {"ten": "Hà", "ma": "SN-7K2P", "han": "31/12/2026", "diem": "1.250"}
    assert template_data(BIRTHDAY_PARAMS, BIRTHDAY_MAPPING, values) == {
        "customer_name": "Hà",
        "voucher_code": "SN-7K2P",
        "expiry_date": "31/12/2026",
        "points": "1250",  # a NUMBER takes digits, not "1.250" as we show points
    }


def test_lengths_count_characters_after_nfc() -> None:
    decomposed = "Nguye\u0302\u0303n Thi\u0323 Ha\u0300" * 2  # 34 code points as typed: over 30
    assert len(decomposed) == 34
    data = template_data(BIRTHDAY_PARAMS, BIRTHDAY_MAPPING, {"ten": decomposed, "ma": "X", "han": "01/01/2027"})
    assert data["customer_name"] == "Nguyễn Thị HàNguyễn Thị Hà"  # 26 characters, as Zalo counts them


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"ten": "A" * 31, "ma": "X", "han": "01/01/2027"}, "customer_name dài 31 ký tự, mẫu tin cho tối đa 30"),
        ({"ten": "Hà", "han": "01/01/2027"}, "voucher_code của mẫu tin bắt buộc"),
        ({"ten": "Hà", "ma": "X", "han": "2027-01-01"}, "expiry_date cần ngày dạng dd/mm/yyyy"),
        ({"ten": "Hà", "ma": "X", "han": "01/01/2027", "diem": "nhiều"}, "points cần một số"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_the_reason(values: dict[str, str], reason: str) -> None:
    with pytest.raises(TemplateDataError, match=reason):
        template_data(BIRTHDAY_PARAMS, BIRTHDAY_MAPPING, values)


# --- sending: by UID, by phone, -249 ---------------------------------------------------------------------------


def register(session: Session, purpose: str = "birthday", **changes: object) -> ZaloTemplate:
    fields = {"template_id": "a1b2c3", "status": "ENABLE", "params": BIRTHDAY_PARAMS, "mapping": BIRTHDAY_MAPPING}
    template = ZaloTemplate(purpose=purpose, **{**fields, **changes})
    session.add(template)
    session.commit()
    return template


def birthday_today(app: Flask) -> date:
    return utcnow().astimezone(app.extensions["tichdiem"].settings.tz).date().replace(year=1996)  # a leap year


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def run_birthdays(app: Flask) -> None:
    with app.app_context():
        automations.birthday_offers()
    run_jobs(app)


def test_a_quiet_member_gets_the_birthday_template_by_uid(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    configure(session, birthday_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    register(session)
    add_member(session, "Hà", uid="u-ha", interacted_days_ago=30, birthday=birthday_today(app), phone="84987654321")
    zalo.mock.add(responses.POST, BY_UID, json={"error": 0, "message": "Success", "data": {"message_id": "z1"}})
    run_birthdays(app)
    (call,) = zalo.calls_to(BY_UID)
    body = json.loads(call.request.body)
    assert body["user_id"] == "u-ha" and body["template_id"] == "a1b2c3"
    assert body["template_data"]["customer_name"] == "Hà" and body["template_data"]["points"] == "0"
    from loyalty.codes import pretty_voucher_code
    from models import Voucher

    voucher = session.scalars(select(Voucher)).one()
    assert body["template_data"]["voucher_code"] == pretty_voucher_code(voucher.code)
    assert session.scalars(select(OutboxMessage)).one().status == "sent"


def test_a_template_that_refuses_uids_goes_by_phone_and_is_remembered(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    template = register(session)
    add_member(session, "Hà", uid="u-ha", interacted_days_ago=30, birthday=birthday_today(app), phone="84987654321")
    add_member(session, "Lan", uid="u-lan", interacted_days_ago=30, birthday=birthday_today(app), phone="84912345678")
    configure(session, birthday_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    zalo.mock.add(responses.POST, BY_UID, json={"error": -249, "message": "Template does not support user_id"})
    zalo.mock.add(responses.POST, BY_PHONE, json={"error": 0, "message": "Success", "data": {"msg_id": "p1"}})
    run_birthdays(app)
    assert len(zalo.calls_to(BY_UID)) == 1  # the second member goes straight by phone
    phones = [json.loads(c.request.body) for c in zalo.calls_to(BY_PHONE)]
    assert sorted(p["phone"] for p in phones) == ["84912345678", "84987654321"]
    assert all(p["template_id"] == "a1b2c3" and p["tracking_id"].startswith("birthday:") for p in phones)
    session.refresh(template)
    assert template.uid_refused
    assert {r.status for r in session.scalars(select(OutboxMessage))} == {"sent"}


def test_an_imported_member_who_never_chatted_gets_the_birthday_offer_by_phone(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from loyalty.consent import record_consent
    from loyalty.members import create_member

    configure(session, birthday_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    minh = create_member(session, now=utcnow(), name="Minh", phone="84933333333", birthday=birthday_today(app))
    session.commit()
    register(session)
    run_birthdays(app)
    assert session.scalars(select(OutboxMessage)).all() == []  # imported: no consent to offers yet
    record_consent(session, minh, granted=True, channel="counter", actor="staff:1", now=utcnow())  # at the till
    template = session.scalars(select(ZaloTemplate)).one()
    session.delete(template)
    session.commit()
    run_birthdays(app)
    assert session.scalars(select(OutboxMessage)).all() == []  # no template: nothing queued, no voucher wasted
    register(session)
    zalo.mock.add(responses.POST, BY_PHONE, json={"error": 0, "message": "Success", "data": {"msg_id": "p1"}})
    run_birthdays(app)
    (call,) = zalo.calls_to(BY_PHONE)
    assert json.loads(call.request.body)["phone"] == "84933333333"
    row = session.scalars(select(OutboxMessage)).one()
    assert (row.zalo_user_id, row.status, row.zalo_message_id) == (None, "sent", "p1")


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ({"error": -1121, "message": "Parameter length exceeds"}, "failed"),  # never better on a retry
        ({"error": -108, "message": "Phone number is invalid"}, "failed"),
        ({"error": -115, "message": "Out of quota"}, "pending"),  # tried again once the shop tops up
    ],
)
def test_template_errors_are_final_or_retried(
    app: Flask, zalo: ZaloFake, session: Session, answer: dict, status: str
) -> None:
    from loyalty.members import create_member

    register(session, purpose="broadcast", mapping={"customer_name": "ten", "voucher_code": "ma", "expiry_date": "han"})
    member = create_member(session, now=utcnow(), name="Minh", phone="84933333333")
    session.commit()
    zalo.mock.add(responses.POST, BY_PHONE, json=answer)
    fields = {"ten": "Minh", "ma": "X1", "han": "01/01/2027"}
    with app.app_context():
        ids = automations.queue_proactive(session, member, key="k", text="x", promotional=False, fields=fields)
        session.commit()
        from jobs.outbox import enqueue_delivery

        enqueue_delivery(app.extensions["tichdiem"].queue, ids)
    run_jobs(app)
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == status and str(answer["error"]) in (row.last_error or "")


def test_values_that_do_not_fit_skip_the_row_with_the_reason(app: Flask, zalo: ZaloFake, session: Session) -> None:
    from loyalty.members import create_member

    register(session, purpose="broadcast")
    member = create_member(session, now=utcnow(), name="M" * 40, phone="84933333333")
    session.commit()
    with app.app_context():
        ids = automations.queue_proactive(
            session,
            member,
            key="k",
            text="x",
            promotional=False,
            fields={"ten": "M" * 40, "ma": "X", "han": "01/01/2027"},
        )
        session.commit()
        from jobs.outbox import enqueue_delivery

        enqueue_delivery(app.extensions["tichdiem"].queue, ids)
    run_jobs(app)
    row = session.scalars(select(OutboxMessage)).one()
    assert row.status == "skipped" and "customer_name dài 40 ký tự" in (row.last_error or "")
    assert zalo.calls_to(BY_PHONE) == []


# --- the console: register, read from Zalo, map ----------------------------------------------------------------


def test_the_owner_registers_a_template_zalo_describes_and_maps_its_parameters(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    info = {
        "templateId": "a1b2c3",
        "templateName": "Quà sinh nhật",
        "status": "ENABLE",
        "templateTag": "CUSTOMER_CARE",
        "listParams": BIRTHDAY_PARAMS,
        "price": "300",
    }
    zalo.mock.add(responses.GET, INFO, json={"error": 0, "message": "Success", "data": info})
    owner = login(app, "chu")
    assert login(app, "mkt").get("/admin/templates/").status_code == 403
    owner.post("/admin/templates/birthday", {"template_id": "a1b2c3"}, page="/admin/templates/")
    template = session.scalars(select(ZaloTemplate)).one()
    assert (template.name, template.status, template.price_phone, template.tag) == (
        "Quà sinh nhật",
        "ENABLE",
        300,
        "CUSTOMER_CARE",
    )
    assert template.mapping == {"customer_name": "ten", "voucher_code": "ma", "expiry_date": "han", "points": "diem"}
    page = text_of(owner.get("/admin/templates/"))
    assert "Quà sinh nhật" in page and "300đ qua số điện thoại" in page
    owner.post("/admin/templates/birthday/mapping", {"param-customer_name": "ten"}, page="/admin/templates/")
    assert "chưa chọn giá trị: voucher_code, expiry_date" in text_of(owner.get("/admin/templates/"))
    session.refresh(template)
    assert template.mapping["voucher_code"] == "ma"  # the refused mapping changed nothing
    owner.post(
        "/admin/templates/birthday/mapping",
        {
            "param-customer_name": "ten",
            "param-voucher_code": "ma",
            "param-expiry_date": "han",
            "param-points": "so_diem",
        },
        page="/admin/templates/",
    )
    session.refresh(template)
    assert template.mapping == {
        "customer_name": "ten",
        "voucher_code": "ma",
        "expiry_date": "han",
    }  # so_diem: not birthday's
    assert [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))] == [
        "template_register",
        "template_mapping",
    ]


def test_a_template_zalo_does_not_know_is_not_registered(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.mock.add(responses.GET, INFO, json={"error": -201, "message": "Template is not found"})
    owner = login(app, "chu")
    owner.post("/admin/templates/birthday", {"template_id": "nope123"}, page="/admin/templates/")
    assert "Zalo không trả thông tin mẫu tin nope123" in text_of(owner.get("/admin/templates/"))
    assert session.scalars(select(ZaloTemplate)).all() == []
    owner.post("/admin/templates/birthday", {"template_id": "../x"}, page="/admin/templates/")
    assert len(zalo.calls_to(INFO)) == 1  # a malformed id never reaches Zalo


# --- the emulator plays Zalo's side ----------------------------------------------------------------------------


def test_demo_birthday_offer_by_phone_to_an_imported_member(demo: Demo) -> None:
    """The demo's imported member Nguyễn Thu Hà (0987654321) never chatted: the owner registers the emulator's
    approved birthday template (seeded as the owner would register it), and her birthday offer and gift
    voucher reach her phone's Zalo through it."""
    from emulator.state import DEMO_TEMPLATES

    with demo.app.extensions["tichdiem"].sessions() as s:
        template = s.scalars(select(ZaloTemplate)).one()  # the demo shop registered the emulator's template
        assert (template.purpose, template.template_id) == ("birthday", DEMO_TEMPLATES[0].template_id)
        hà = s.scalars(select(Member).where(Member.phone == "84987654321")).one()
        assert hà.zalo_user_id is None
        today = utcnow().astimezone(demo.app.extensions["tichdiem"].settings.tz).date()
        hà.birthday = today.replace(year=1996)  # a leap year: any today has its day
        s.commit()
    user = demo.state.customer_by_phone("84987654321").user_id  # her phone's Zalo account, as the emulator plays it
    with demo.app.app_context():
        assert automations.birthday_offers() == 1
    demo.pump()
    (offer,) = demo.replies(user)
    assert offer["kind"] == "template" and offer["text"].startswith(
        "[Quà sinh nhật thành viên] customer_name: Nguyễn Thu Hà"
    )


# --- channels, cost and quota -----------------------------------------------------------------------------------


def test_the_preview_says_which_channel_reaches_whom_and_what_it_costs(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    add_member(session, "An", uid="u1", interacted_days_ago=1)  # free
    add_member(session, "Bình", uid="u2", interacted_days_ago=3)  # the OA's quota
    add_member(session, "Chi", uid="u3", interacted_days_ago=3)
    add_member(session, "Dũng", uid="u4", interacted_days_ago=30)  # a template, billed
    quota = [{"quota_owner": "OA", "product_type": "cs", "quota_type": "sub_quota", "total": 2000, "remain": 1}]
    zalo.mock.add(responses.POST, f"{OPENAPI}/v3.0/oa/quota/message", json={"error": 0, "data": quota})
    mkt = login(app, "mkt")
    form = {"name": "x", "text": "Chào {ten}", "when": "now", "action": "preview"}
    page = text_of(mkt.post("/admin/broadcasts/new", form, page="/admin/broadcasts/new"))
    assert "Tin tư vấn miễn phí (khách nhắn tin trong 48 giờ)</td><td>1" in page
    assert "hạn mức của OA (48 giờ–7 ngày)</td><td>2 · hạn mức còn 1/2.000" in page and "không đủ" in page
    assert "chưa có <a" in page and "mẫu tin</a>)</td><td>1" in page  # no template: not reached
    register(session, purpose="broadcast", price_uid=220, price_phone=300, mapping={"customer_name": "ten"})
    page = text_of(mkt.post("/admin/broadcasts/new", form, page="/admin/broadcasts/new"))
    assert "Mẫu tin ZBS, tính phí (quá 7 ngày)</td><td>1 · ước tính 220đ" in page
    (call,) = zalo.calls_to(f"{OPENAPI}/v3.0/oa/quota/message")[:1]
    assert json.loads(call.request.body) == {"quota_owner": "OA", "product_type": "cs", "quota_type": "sub_quota"}


def test_a_broadcast_pauses_with_the_reason_when_the_quota_runs_out(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from loyalty.segments import Segment
    from marketing import campaigns
    from models import Broadcast

    for i in range(3):
        add_member(session, f"M{i}", uid=f"q{i}", interacted_days_ago=3)
    zalo.answer_messages({"error": 0, "data": {"message_id": "m1"}}, {"error": -211, "message": "Out of quota"})
    with app.app_context():
        b = campaigns.create_broadcast(
            session, name="q", text="Chào {ten}", segment=Segment(), send_at=None, now=utcnow(), promotional=False
        )
        session.commit()
        from jobs import broadcasts

        broadcasts.start_due_broadcasts()
    run_jobs(app)
    session.expire_all()
    broadcast = session.get(Broadcast, b.id)
    assert broadcast.status == "paused" and "hết hạn mức" in (broadcast.pause_reason or "")
    statuses = sorted(r.status for r in session.scalars(select(OutboxMessage)))
    assert statuses == ["pending", "pending", "sent"]  # nothing failed: the rest waits for the quota
    page = text_of(login(app, "mkt").get(f"/admin/broadcasts/{b.id}"))
    assert "OA đã hết hạn mức tin của Zalo (lỗi -211)" in page
    zalo.accept_messages()
    with app.app_context():
        campaigns.resume(session, b.id)
        session.commit()
    run_jobs(app, include_scheduled=True)
    session.expire_all()
    assert session.get(Broadcast, b.id).status == "done" and session.get(Broadcast, b.id).pause_reason is None


def test_the_emulator_counts_consultation_messages_against_the_quota(demo: Demo) -> None:
    from datetime import UTC, datetime, timedelta

    user = demo.customer(name="Khách quota", phone="0911111111")
    demo.act(user, "follow")
    customer = demo.state.customers[user]
    customer.last_interaction = datetime.now(UTC) - timedelta(days=3)
    demo.state.cs_quota_total, demo.state.cs_quota_used = 1, 0
    client = demo.app.extensions["tichdiem"].zalo
    from zalo.messages import text_message

    client.send_message(user, text_message("một"))
    assert client.message_quota().remain == 0
    from zalo.errors import ZaloOutOfQuota

    with pytest.raises(ZaloOutOfQuota):
        client.send_message(user, text_message("hai"))


def test_the_report_words_zalos_template_errors_in_vietnamese() -> None:
    from console.broadcasts.views import reason_label

    assert reason_label("Zalo error -1121: Parameter length exceeds") == (
        "Giá trị tham số dài hơn mẫu tin cho phép (Zalo -1121)"
    )
    assert reason_label("not following the OA") == "Khách đã bỏ quan tâm OA"
    assert reason_label("mẫu tin x: tham số a bắt buộc") == "mẫu tin x: tham số a bắt buộc"  # ours, already Vietnamese
