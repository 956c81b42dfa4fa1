"""Conversation basics through webhook -> job -> mocked Zalo: help, hints, follow/unfollow."""

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.text import fold
from models import ZaloUser
from tests.helpers import ZaloFake, fixture_bytes, post_event, run_jobs, text_event


def ask(app: Flask, zalo: ZaloFake, text: str, msg_id: str = "m-1") -> list[dict]:
    zalo.accept_messages()
    before = len(zalo.sent_messages())
    assert post_event(app.test_client(), text_event(text, msg_id)).status_code == 200
    run_jobs(app)
    return [m["message"] for m in zalo.sent_messages()[before:]]


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Điểm", "diem"), ("DIEM", "diem"), ("#TRỢ   GIÚP ", "tro giup"), ("đổi  Quà", "doi qua"), ("", "")],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize("text", ["trợ giúp", "TRO GIUP", "#trogiup", "Help", "?", "hướng dẫn", "#TRỢ GIÚP"])
def test_help_in_any_spelling(app: Flask, zalo: ZaloFake, text: str) -> None:
    (message,) = ask(app, zalo, text)
    assert message["text"].startswith("Bạn có thể nhắn cho Cà phê Sữa Đá các lệnh sau")


def test_unknown_text_gets_a_friendly_hint(app: Flask, zalo: ZaloFake) -> None:
    (message,) = ask(app, zalo, "bánh mì có không 🥖")
    assert message["text"] == 'Xin lỗi, mình chưa hiểu "bánh mì có không 🥖". Bạn nhắn "trợ giúp" để xem các lệnh nhé.'
    assert message["attachment"]["payload"]["buttons"][0]["payload"] == "#TROGIUP"


def test_very_long_unknown_text_is_quoted_short(app: Flask, zalo: ZaloFake) -> None:
    (message,) = ask(app, zalo, "a" * 5000)
    assert len(message["text"]) < 200 and "…" in message["text"]


def test_sticker_gets_a_hint(app: Flask, zalo: ZaloFake) -> None:
    zalo.accept_messages()
    post_event(app.test_client(), fixture_bytes("user_send_sticker"))
    run_jobs(app)
    (sent,) = zalo.sent_messages()
    assert sent["message"]["text"].startswith("Cảm ơn bạn! Mình chỉ đọc được tin nhắn chữ.")


def test_unfollow_marks_inactive_without_a_message(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.accept_messages()
    client = app.test_client()
    post_event(client, fixture_bytes("follow"))
    run_jobs(app)
    post_event(client, fixture_bytes("unfollow"))
    run_jobs(app)
    assert len(zalo.sent_messages()) == 1  # the welcome only
    user = session.scalars(select(ZaloUser)).one()
    assert not user.is_follower and user.unfollowed_at is not None


def test_interaction_time_is_recorded_from_the_event(app: Flask, zalo: ZaloFake, session: Session) -> None:
    ask(app, zalo, "help")
    user = session.scalars(select(ZaloUser)).one()
    assert user.last_interaction_at is not None
    assert user.last_interaction_at.isoformat().startswith("2024-08-29")  # the event's timestamp, in UTC
