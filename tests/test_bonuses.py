"""Welcome and profile points (issue 17): off by default, given once per member through the chat."""

from __future__ import annotations

from dataclasses import replace

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.bonuses import grant_profile, grant_welcome
from loyalty.program import load_rules, save_rules
from models import EntryKind, LedgerEntry, Member, utcnow
from tests.helpers import Chat, ZaloFake, seed_shop


def switch_on(session: Session, welcome: int = 20, profile: int = 10) -> None:
    seed_shop(session)
    rules = load_rules(session)
    save_rules(session, replace(rules, welcome_bonus_points=welcome, profile_bonus_points=profile))
    session.commit()


def bonuses(session: Session) -> list[tuple[int, str]]:
    session.expire_all()
    stmt = select(LedgerEntry.points, LedgerEntry.reason).where(LedgerEntry.kind == EntryKind.BONUS)
    return [tuple(row) for row in session.execute(stmt.order_by(LedgerEntry.id))]  # type: ignore[misc]


def test_off_by_default(app: Flask, zalo: ZaloFake, session: Session) -> None:
    seed_shop(session)
    session.commit()
    (registered, *_rest) = Chat(app, zalo).share_info(name="Lan", phone="84912345678")
    assert "chào mừng" not in registered["text"] and "điểm thưởng" not in registered["text"]
    assert bonuses(session) == []


def test_a_welcome_on_joining_and_points_for_the_birthday_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    switch_on(session)
    chat = Chat(app, zalo)
    (registered, *_rest) = chat.share_info(name="Lan", phone="84912345678")
    assert "Tặng bạn 20 điểm chào mừng!" in registered["text"]
    assert 'Nhắn "sinh nhật 12/05/1990" để nhận quà sinh nhật và 10 điểm thưởng nhé.' in registered["text"]
    (saved, *_rest) = chat.say("sinh nhật 12/05/1990")
    assert "+10 điểm thưởng vì đã hoàn thiện hồ sơ." in saved["text"]
    (again, *_rest) = chat.say("sinh nhật 13/05/1990")  # a corrected birthday: no second bonus
    assert "điểm thưởng" not in again["text"]
    chat.share_info(name="Lan", phone="84912345678", user_dob="12/05/1990")  # shared again: nothing more
    assert bonuses(session) == [(20, "thưởng chào mừng"), (10, "thưởng hoàn thiện hồ sơ")]
    assert session.scalars(select(Member)).one().points_balance == 30
    (history, *_rest) = chat.say("lịch sử")
    assert "+10 điểm — thưởng hoàn thiện hồ sơ" in history["text"]


def test_a_birthday_shared_at_registration_earns_both_at_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    switch_on(session)
    (registered, *_rest) = Chat(app, zalo).share_info(name="Lan", phone="84912345678", user_dob="12/05/1990")
    assert "Tặng bạn 20 điểm chào mừng!" in registered["text"]
    assert "Thêm 10 điểm vì đã cho biết ngày sinh." in registered["text"]
    assert [points for points, _ in bonuses(session)] == [20, 10]


def test_each_bonus_is_given_once_whatever_retries(app: Flask, session: Session) -> None:
    from loyalty.members import create_member

    switch_on(session)
    member = create_member(session, now=utcnow(), name="Hà", birthday=__import__("datetime").date(1990, 5, 12))
    rules = load_rules(session)
    assert grant_welcome(session, member, rules, utcnow()) == 20
    assert grant_welcome(session, member, rules, utcnow()) == 0
    assert grant_profile(session, member, rules, utcnow()) == 10
    assert grant_profile(session, member, rules, utcnow()) == 0
    session.commit()
    assert session.get(Member, member.id).points_balance == 30  # type: ignore[union-attr]
