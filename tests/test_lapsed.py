"""Lapsed-member care (issue 18): members who bought nothing for N days get one invitation per lapse, with a
voucher if the owner picked a reward, only with consent and inside Zalo's 7-day rule. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs import automations
from models import Member, OutboxMessage, Voucher, ZaloTemplate, ZaloUser
from tests.helpers import ZaloFake, seed_shop
from tests.test_marketing import TEMPLATE_URL, add_member, configure, texts_to

DAY = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam: offers may go out
DAY1 = timedelta(days=1)


@pytest.fixture
def shop(session: Session) -> dict:
    return seed_shop(session)


def bought(session: Session, member: Member, days_ago: int) -> None:
    member.last_earned_at = DAY - timedelta(days=days_ago)
    member.joined_at = DAY - timedelta(days=400)
    session.commit()


def test_a_member_who_stopped_buying_is_invited_once_with_a_voucher(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    zalo.accept_messages()
    configure(session, lapsed_enabled=True, lapsed_days=60, lapsed_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    with time_machine.travel(DAY, tick=False):
        ha = add_member(session, "Hà", uid="u-ha", interacted_days_ago=2)
        bought(session, ha, 61)
        bought(session, add_member(session, "Khoa", uid="u-khoa", interacted_days_ago=2), 30)  # not yet
        bought(session, add_member(session, "Mai", uid="u-mai", interacted_days_ago=2, consent=False), 61)
        bought(session, add_member(session, "Quang", uid="u-quang", interacted_days_ago=2), 200)  # long gone
        bought(session, add_member(session, "Lan", uid="u-lan", interacted_days_ago=20), 61)  # past the window
        with app.app_context():
            assert automations.invite_lapsed(DAY) == 1
            assert automations.invite_lapsed(DAY + timedelta(days=1)) == 1  # the next day: still one of each
        from tests.helpers import run_jobs

        run_jobs(app)
    voucher = session.scalars(select(Voucher)).one()
    assert voucher.member_id == ha.id and voucher.source == "lapsed"
    (invitation,) = texts_to(zalo, "u-ha")
    assert invitation.startswith("Hà ơi, lâu rồi Cà phê Sữa Đá chưa gặp bạn! Tặng bạn Cà phê sữa đá: mã ")
    assert all(texts_to(zalo, uid) == [] for uid in ("u-khoa", "u-mai", "u-quang", "u-lan"))

    # She comes back, then stays away again: a new lapse, a new invitation.
    bought(session, ha, 1)
    later = DAY + timedelta(days=60)
    with time_machine.travel(later, tick=False), app.app_context():
        session.get(Member, ha.id).last_earned_at = later - timedelta(days=61)  # type: ignore[union-attr]
        session.scalars(select(ZaloUser).where(ZaloUser.user_id == "u-ha")).one().last_interaction_at = later - DAY1
        session.commit()
        assert automations.invite_lapsed(later) == 1
    assert session.scalar(select(func.count()).select_from(Voucher)) == 2


def test_past_the_7_day_window_it_goes_only_as_the_shops_template(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    import responses

    zalo.mock.add(responses.POST, TEMPLATE_URL, json={"error": 0, "data": {"message_id": "t1"}})
    configure(session, lapsed_enabled=True, lapsed_days=60)
    with time_machine.travel(DAY, tick=False):
        lan = add_member(session, "Lan", uid="u-lan", interacted_days_ago=20)
        bought(session, lan, 62)
        with app.app_context():
            assert automations.invite_lapsed(DAY) == 0  # no template: a free-form message would be refused
        session.add(
            ZaloTemplate(
                purpose="lapsed",
                template_id="zbs-lapsed",
                status="ENABLE",
                params=[{"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30}],
                mapping={"customer_name": "ten"},
            )
        )
        session.commit()
        with app.app_context():
            assert automations.invite_lapsed(DAY) == 1
        from tests.helpers import run_jobs

        run_jobs(app)
    (call,) = zalo.calls_to(TEMPLATE_URL)
    assert b'"template_id": "zbs-lapsed"' in call.request.body or b'"template_id":"zbs-lapsed"' in call.request.body
    assert session.scalars(select(OutboxMessage)).one().status == "sent"


def test_it_is_off_by_default_and_the_program_page_switches_it_on(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    from console.staff import create_staff
    from loyalty.program import load_rules
    from tests.console_support import login, text_of
    from tests.test_admin import program_form

    with time_machine.travel(DAY, tick=False):
        bought(session, add_member(session, "Hà", uid="u-ha", interacted_days_ago=2), 61)
        with app.app_context():
            assert automations.invite_lapsed(DAY) == 0
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    session.commit()
    owner = login(app, "chu")
    form = program_form(owner)
    assert form["lapsed_days"] == "60"
    reward = str(shop["rewards"]["Bánh ngọt"].id)
    saved = owner.post(
        "/admin/program",
        form | {"lapsed_enabled": "on", "lapsed_days": "45", "lapsed_reward_id": reward},
        page="/admin/program",
    )
    assert saved.status_code in (200, 302), text_of(saved)
    session.expire_all()
    a = load_rules(session).automations
    assert (a.lapsed_enabled, a.lapsed_days, a.lapsed_reward_id) == (True, 45, int(reward))
    bad = owner.post(
        "/admin/program", program_form(owner) | {"lapsed_text": "Chào {ten} {ma_sai}"}, page="/admin/program"
    )
    assert "Không hiểu {ma_sai}" in text_of(bad)
