"""Vouchers to a group (issue 17): a marketer gives a reward with a message to a segment or a named group;
each member gets one voucher exactly once, even when the fan-out runs again; the report shows issued/used.
The birthday-list flow of our sources is this: import the month's list with a "Nhóm" column, then a gift
broadcast to that group (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.groups import add_to_group
from models import Broadcast, OutboxMessage, Reward, Voucher
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import ZaloFake, run_jobs
from tests.test_marketing import add_member, texts_to

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def gift_form(reward: Reward, **fields: str) -> dict[str, str]:
    return {
        "name": "Quà sinh nhật tháng 12",
        "text": "Chúc mừng sinh nhật {ten}! 🎂",
        "when": "now",
        "reward_id": str(reward.id),
        "group": "Sinh nhật tháng 12",
        "action": "save",
        **fields,
    }


def test_each_member_of_the_group_gets_one_voucher_once(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from jobs.broadcasts import fan_out
    from jobs.context import use_services

    zalo.accept_messages()
    an, binh = add_member(session, "An", uid="u1"), add_member(session, "Bình", uid="u2")
    add_member(session, "Chi", uid="u3")  # not in the group
    add_to_group(session, [an.id, binh.id], "Sinh nhật tháng 12", datetime.now(UTC))
    session.commit()
    coffee = shop["rewards"]["Cà phê sữa đá"]
    with time_machine.travel(NOON):
        mkt = login(app, "mkt")
        preview = mkt.post(
            "/admin/broadcasts/new", {**gift_form(coffee), "action": "preview"}, page="/admin/broadcasts/new"
        )
        assert "Quà của bạn: Cà phê sữa đá — mã ABCD-EFGH" in text_of(preview)
        assert mkt.post("/admin/broadcasts/new", gift_form(coffee), page="/admin/broadcasts/new").status_code == 302
        run_jobs(app)
    broadcast = session.scalars(select(Broadcast)).one()
    vouchers = {v.member_id: v for v in session.scalars(select(Voucher))}
    assert set(vouchers) == {an.id, binh.id} and {v.source for v in vouchers.values()} == {"campaign"}
    assert all(v.points_spent == 0 for v in vouchers.values())
    (text,) = texts_to(zalo, "u1")
    code = vouchers[an.id].code
    assert text.startswith("Chúc mừng sinh nhật An! 🎂\nQuà của bạn: Cà phê sữa đá — mã ")
    assert f"{code[:4]}-{code[4:]}" in text and texts_to(zalo, "u3") == []

    with app.app_context(), use_services(app.extensions["tichdiem"]):
        fan_out(broadcast.id)  # a retried fan-out: no second voucher, no second message
    assert session.scalar(select(func.count()).select_from(Voucher)) == 2
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2

    cashier = login(app, "thu-ngan")
    cashier.post(f"/counter/vouchers/{code}/use", {"op": "use-1"}, page=f"/counter/vouchers/{code}")
    report = text_of(login(app, "mkt").get(f"/admin/broadcasts/{broadcast.id}"))
    assert '<strong id="gifts-issued">2</strong>' in report and '<strong id="gifts-used">1</strong>' in report
    assert "nhóm Sinh nhật tháng 12" in report


def test_when_the_gift_runs_out_the_rest_are_told_nothing_and_the_report_says_why(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    zalo.accept_messages()
    an, binh = add_member(session, "An", uid="u1"), add_member(session, "Bình", uid="u2")
    add_to_group(session, [an.id, binh.id], "Sinh nhật tháng 12", datetime.now(UTC))
    cake = shop["rewards"]["Bánh ngọt"]
    cake.stock = 1
    session.commit()
    with time_machine.travel(NOON):
        login(app, "mkt").post("/admin/broadcasts/new", gift_form(cake), page="/admin/broadcasts/new")
        run_jobs(app)
    assert session.scalar(select(func.count()).select_from(Voucher)) == 1
    skipped = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "skipped")).one()
    assert skipped.last_error == "Hết quà để tặng."
    assert len(texts_to(zalo, "u1") + texts_to(zalo, "u2")) == 1


def test_a_gift_needs_members(app: Flask, session: Session, shop) -> None:
    coffee = shop["rewards"]["Cà phê sữa đá"]
    page = login(app, "mkt").post(
        "/admin/broadcasts/new", gift_form(coffee, audience="followers", group=""), page="/admin/broadcasts/new"
    )
    assert "Chỉ thành viên nhận được voucher" in text_of(page)
    assert session.scalar(select(Broadcast.id)) is None
