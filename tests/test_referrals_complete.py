"""Referrals, complete (issue 17): both sides rewarded on the first purchase, the referrer told in the chat,
an invitation page, an affiliate share of later bills for a period with a cap, taken back on a refund."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.staff import create_api_key
from loyalty.program import load_rules, save_rules
from models import EntryKind, LedgerEntry, Member, Store
from tests.helpers import Chat, ZaloFake, run_jobs, seed_shop

REFERRER, FRIEND = "1111111111111111111", "8958041078911298472"


@pytest.fixture
def pos(session: Session) -> str:
    shop = seed_shop(session)
    session.get(Store, shop["stores"]["Q1"].id).earn_points = None  # type: ignore[union-attr]
    rules = load_rules(session)
    save_rules(
        session,
        replace(
            rules,
            referral_bonus_value=50,
            referee_bonus_points=30,
            referral_affiliate_pct=5,
            referral_affiliate_days=90,
            referral_affiliate_cap=40,
        ),
    )
    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None).secret
    session.commit()
    return key


def member(session: Session, uid: str) -> Member:
    session.expire_all()
    return session.scalars(select(Member).where(Member.zalo_user_id == uid)).one()


def earn(app: Flask, key: str, idem: str, amount: int, phone: str = "0922222222"):  # type: ignore[no-untyped-def]
    headers = {"X-Api-Key": key, "Idempotency-Key": idem}
    return app.test_client().post("/api/v1/earns", json={"phone": phone, "amount": amount}, headers=headers)


def referred_pair(app: Flask, zalo: ZaloFake, session: Session) -> Chat:
    zalo.accept_messages()
    referrer = Chat(app, zalo, REFERRER)
    referrer.share_info(name="Trần Thị B", phone="84911111111")
    code = member(session, REFERRER).code
    friend = Chat(app, zalo, FRIEND)
    friend.say(f"mã {code}")
    friend.share_info(name="Bé Na", phone="84922222222")
    zalo.mock.calls.reset()
    return friend


def texts_to(zalo: ZaloFake, uid: str) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.sent_messages() if m["recipient"]["user_id"] == uid]


def test_both_are_rewarded_on_the_first_purchase_and_the_referrer_is_told(
    app: Flask, zalo: ZaloFake, session: Session, pos: str
) -> None:
    referred_pair(app, zalo, session)
    zalo.accept_messages()
    assert earn(app, pos, "b1", 200_000).status_code == 201
    assert earn(app, pos, "b1", 200_000).status_code == 200  # the POS retries: nothing twice
    run_jobs(app)
    assert member(session, REFERRER).points_balance == 50
    assert member(session, FRIEND).points_balance == 20 + 30  # the bill's points and the friend's own bonus
    assert texts_to(zalo, REFERRER) == [
        "🎉 +50 điểm: một người bạn do bạn giới thiệu vừa mua hàng lần đầu. Cảm ơn bạn! Số dư 50 điểm."
    ]
    assert "🎁 +30 điểm thưởng vì bạn đến theo lời giới thiệu — số dư 50 điểm." in texts_to(zalo, FRIEND)


def test_later_bills_give_an_affiliate_share_up_to_the_cap_and_a_refund_takes_it_back(
    app: Flask, zalo: ZaloFake, session: Session, pos: str
) -> None:
    referred_pair(app, zalo, session)
    zalo.accept_messages()
    earn(app, pos, "b1", 100_000)  # first purchase: the one-time bonuses
    second = earn(app, pos, "b2", 400_000).json  # 5% of 400.000đ = 20 points
    assert member(session, REFERRER).points_balance == 50 + 20
    earn(app, pos, "b3", 600_000)  # 30 points, but the cap of 40 leaves 20
    earn(app, pos, "b4", 600_000)  # the cap is reached: nothing
    assert member(session, REFERRER).points_balance == 50 + 40
    run_jobs(app)
    assert "+20 điểm hoa hồng từ hóa đơn của một người bạn do bạn giới thiệu — số dư 70 điểm." in texts_to(
        zalo, REFERRER
    )

    refund = app.test_client().post(f"/api/v1/earns/{second['entry_id']}/reverse", headers={"X-Api-Key": pos})
    assert refund.status_code == 200
    assert member(session, REFERRER).points_balance == 50 + 20  # the refunded bill's share went back
    shares = session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.kind == EntryKind.REFERRAL_BONUS, LedgerEntry.idempotency_key.like("affiliate:%")
        )
    ).all()
    assert sorted(s.points for s in shares) == [20, 20]


def test_no_share_after_the_period(app: Flask, zalo: ZaloFake, session: Session, pos: str) -> None:
    import time_machine

    referred_pair(app, zalo, session)
    zalo.accept_messages()
    earn(app, pos, "b1", 100_000)
    with time_machine.travel(
        __import__("datetime").datetime.now(__import__("datetime").UTC) + __import__("datetime").timedelta(days=91)
    ):
        earn(app, pos, "b2", 400_000)
    assert member(session, REFERRER).points_balance == 50


def test_the_invitation_page_says_what_zalo_allows(app: Flask, session: Session, pos: str) -> None:
    page = app.test_client().get("/r/abc234")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "mã ABC234" in html and "https://zalo.me/4024926008133882615" in html
    assert "nhận 30 điểm ở lần mua đầu tiên" in html
    assert "Zalo không cho điền sẵn tin nhắn" in html
    assert "Trần" not in html  # the page never looks the code up: nobody learns whose code it is


def test_a_first_purchase_claimed_in_the_chat_tells_the_referrer_in_theirs(
    app: Flask, zalo: ZaloFake, session: Session, pos: str
) -> None:
    """The customer scans the receipt's QR and sends its code: the answer goes to them, the referrer's notice
    to the referrer's own chat (a reply addressed to another member, queued with the event's replies)."""
    from loyalty.claims import create_claim
    from models import utcnow

    friend = referred_pair(app, zalo, session)
    claim, _ = create_claim(session, 150_000, key="receipt-1", now=utcnow())
    session.commit()
    zalo.accept_messages()
    answers = friend.say(f"#{claim.code}")
    assert any("+15 điểm từ hóa đơn 150.000đ" in a.get("text", "") for a in answers), answers
    assert any("+30 điểm thưởng vì bạn đến theo lời giới thiệu" in a.get("text", "") for a in answers)
    assert texts_to(zalo, REFERRER) == [
        "🎉 +50 điểm: một người bạn do bạn giới thiệu vừa mua hàng lần đầu. Cảm ơn bạn! Số dư 50 điểm."
    ]
