"""Paying part of a bill with points through the real paths: the cashier page, the POS API, the member's chat
message, refunds, double clicks and retries (issue 17; both databases)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.staff import create_api_key, create_staff
from loyalty import ledger
from loyalty.members import create_member
from loyalty.program import load_rules, save_rules
from models import AuditLog, EntryKind, LedgerEntry, Member, Store
from tests.console_support import login, text_of
from tests.helpers import Chat, Console, ZaloFake, run_jobs, seed_shop

UID = "8958041078911298472"


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    q1 = session.get(Store, shop["stores"]["Q1"].id)
    create_staff(session, username="thu-ngan", password="mat-khau-123", role="cashier", store_id=q1.id)  # type: ignore[union-attr]
    rules = load_rules(session)
    save_rules(session, replace(rules, points_payment_enabled=True, points_payment_min_balance=20))
    session.commit()
    return shop


@pytest.fixture
def lan(session: Session, shop) -> Member:  # type: ignore[no-untyped-def]
    member = create_member(session, now=datetime.now(UTC), name="Lan", phone="84912345678", zalo_user_id=UID)
    ledger.adjust(
        session, member.id, 300, key="gift", reason="tặng", actor=ledger.SYSTEM, now=datetime.now(UTC), expires_at=None
    )
    session.commit()
    return member


def flashes(response) -> list[str]:  # type: ignore[no-untyped-def]
    import re

    return [
        re.sub(r"\s+", " ", m).strip()
        for m in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', response.get_data(as_text=True))
    ]


def pay_form(console: Console, member: Member, op: str, **form: str):  # type: ignore[no-untyped-def]
    data = {"pay_amount": "250000", "points": "50", "pay_bill_ref": "HD123", "op": op, **form}
    return console.post(f"/counter/members/{member.id}/pay", data, follow_redirects=True)


def test_the_cashier_takes_points_off_a_bill_once_and_the_member_is_told(
    app: Flask, zalo: ZaloFake, session: Session, lan: Member
) -> None:
    zalo.accept_messages()
    cashier = login(app, "thu-ngan")
    page = cashier.get(f"/counter/members/{lan.id}")
    assert "Trừ điểm vào hóa đơn" in text_of(page) and "tối đa 50% hóa đơn" in text_of(page)
    first = pay_form(cashier, lan, "op-1")
    assert "−50 điểm = 50.000đ trừ vào hóa đơn; khách trả 200.000đ. Số dư 250 điểm." in flashes(first)
    pay_form(cashier, lan, "op-1")  # a double click: the same form's op
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 250  # type: ignore[union-attr]
    payments = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.PAY)).all()
    assert len(payments) == 1 and payments[0].source_ref == "HD123" and payments[0].channel == "counter"
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "pay_points")) == 1
    run_jobs(app)
    texts = [m["message"]["text"] for m in zalo.sent_messages()]
    assert texts == ["−50 điểm (50.000đ) cho hóa đơn HD123 — số dư 250 điểm."]
    answers = Chat(app, zalo).say("lịch sử")  # (and the one-time consent question after it)
    assert answers[0]["text"].splitlines()[1].startswith("−50 điểm — trừ vào hóa đơn HD123 — ")


def test_the_counter_says_why_points_cannot_pay(app: Flask, session: Session, lan: Member) -> None:
    cashier = login(app, "thu-ngan")
    assert "Hóa đơn này trừ được tối đa 125 điểm." in flashes(pay_form(cashier, lan, "a", points="200"))
    assert "Nhập số tiền hóa đơn và số điểm muốn trừ" in flashes(pay_form(cashier, lan, "b", points="nhiều"))[0]
    rules = load_rules(session)
    save_rules(session, replace(rules, points_payment_enabled=False))
    session.commit()
    assert "Trừ điểm vào hóa đơn" not in text_of(cashier.get(f"/counter/members/{lan.id}"))
    assert "Cửa hàng chưa bật thanh toán bằng điểm" in flashes(pay_form(cashier, lan, "c"))[0]
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 300  # type: ignore[union-attr]


def test_a_refund_at_the_counter_gives_the_points_back(
    app: Flask, zalo: ZaloFake, session: Session, lan: Member
) -> None:
    zalo.accept_messages()
    cashier = login(app, "thu-ngan")
    pay_form(cashier, lan, "op-2")
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.PAY)).one()
    home = cashier.get("/counter/")
    assert f"/counter/entries/{entry.id}/reverse" in home.get_data(as_text=True)  # its own latest: may refund
    refunded = cashier.post(f"/counter/entries/{entry.id}/reverse", follow_redirects=True)
    assert "Đã trả lại điểm đã trừ vào hóa đơn." in flashes(refunded)
    cashier.post(f"/counter/entries/{entry.id}/reverse", follow_redirects=True)  # a double click: the same refund
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reverses_id == entry.id)) == 1
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 300  # type: ignore[union-attr]
    run_jobs(app)
    assert "+50 điểm hoàn lại: hóa đơn HD123 đã được hoàn tiền — số dư 300 điểm." in [
        m["message"]["text"] for m in zalo.sent_messages()
    ]


def api(app: Flask, path: str, key: str, idem: str | None = None, **body: object):  # type: ignore[no-untyped-def]
    headers = {"X-Api-Key": key, **({"Idempotency-Key": idem} if idem else {})}
    return app.test_client().post(f"/api/v1{path}", json=body, headers=headers)


def test_the_pos_api_pays_with_points_once_and_refunds_once(
    app: Flask, zalo: ZaloFake, session: Session, lan: Member, shop
) -> None:
    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None).secret
    session.commit()
    body = {"phone": "0912345678", "amount": 180_000, "points": 40, "bill_ref": "HD9"}
    first = api(app, "/point-payments", key, "pay-1", **body)
    assert first.status_code == 201
    assert {k: first.json[k] for k in ("points", "vnd", "to_pay", "balance", "replayed")} == {
        "points": 40,
        "vnd": 40_000,
        "to_pay": 140_000,
        "balance": 260,
        "replayed": False,
    }
    retry = api(app, "/point-payments", key, "pay-1", **body)
    assert retry.status_code == 200 and retry.json["replayed"] and retry.json["entry_id"] == first.json["entry_id"]
    conflict = api(app, "/point-payments", key, "pay-1", **{**body, "points": 41})
    assert conflict.status_code == 409 and conflict.json["error"]["code"] == "idempotency_conflict"
    refused = api(app, "/point-payments", key, "pay-2", **{**body, "points": 100})
    assert refused.status_code == 422
    assert refused.json["error"] | {"message": ""} == {
        "code": "payment_refused",
        "reason": "over_limit",
        "limit": 90,
        "message": "",
    }
    assert api(app, "/point-payments", key, None, **body).status_code == 422  # no Idempotency-Key

    entry_id = first.json["entry_id"]
    refund = api(app, f"/point-payments/{entry_id}/refund", key)
    assert refund.status_code == 200 and refund.json["balance"] == 300
    assert api(app, f"/point-payments/{entry_id}/refund", key).json["balance"] == 300  # a retried refund: once
    other_store = create_api_key(session, store_id=shop["stores"]["OUTLET"].id, name="B", created_by_id=None).secret
    session.commit()
    assert api(app, f"/point-payments/{entry_id}/refund", other_store).status_code == 404
    session.expire_all()
    assert session.get(Member, lan.id).points_balance == 300  # type: ignore[union-attr]
    assert session.scalar(select(LedgerEntry.channel).where(LedgerEntry.kind == EntryKind.PAY)) == "pos"


def test_the_program_page_switches_it_on_with_its_limits(app: Flask, session: Session, shop) -> None:
    from tests.test_admin import program_form

    owner = login(app, "chu")
    form = program_form(owner)
    assert form["points_payment_min_balance"] == "20" and form["points_payment_max_pct"] == "50"
    owner.post("/admin/program", form | {"points_payment_max_pct": "30"}, page="/admin/program")
    session.expire_all()
    rules = load_rules(session)
    assert rules.points_payment_max_pct == 30 and rules.points_payment_enabled is False  # the box was not sent
    bad = owner.post("/admin/program", program_form(owner) | {"points_payment_max_pct": "150"}, page="/admin/program")
    assert "Trừ tối đa (% hóa đơn): từ 1 đến 100." in text_of(bad)
