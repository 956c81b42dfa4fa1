"""Conversation basics through webhook -> job -> mocked Zalo: help, hints, follow/unfollow."""

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.text import fold
from models import ZaloUser
from tests.helpers import Chat, ZaloFake


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Điểm", "diem"), ("DIEM", "diem"), ("#TRỢ   GIÚP ", "tro giup"), ("đổi  Quà", "doi qua"), ("", "")],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


@pytest.mark.parametrize("text", ["trợ giúp", "TRO GIUP", "#trogiup", "Help", "?", "hướng dẫn", "#TRỢ GIÚP"])
def test_help_in_any_spelling(app: Flask, zalo: ZaloFake, text: str) -> None:
    (message,) = Chat(app, zalo).say(text)
    assert message["text"].startswith("Bạn có thể nhắn cho Cà phê Sữa Đá các lệnh sau")
    assert '• "điểm" — số điểm, hạng và điểm sắp hết hạn' in message["text"]
    assert [b["payload"] for b in message["attachment"]["payload"]["buttons"]] == ["#DIEM", "#THE", "#QUA"]


def test_a_strangers_first_message_gets_the_welcome_then_hints(app: Flask, zalo: ZaloFake) -> None:
    chat = Chat(app, zalo)
    first = chat.say("bánh mì có không 🥖")
    assert first[0]["text"].startswith("Chào mừng bạn đến với Cà phê Sữa Đá!")
    assert first[1]["attachment"]["payload"]["template_type"] == "request_user_info"
    (second,) = chat.say("bánh mì có không 🥖")  # the share-info card is not repeated within 24 h
    assert second["text"] == 'Xin lỗi, mình chưa hiểu "bánh mì có không 🥖". Bạn nhắn "trợ giúp" để xem các lệnh nhé.'
    assert [b["payload"] for b in second["attachment"]["payload"]["buttons"]] == ["#TROGIUP", "#DIEM"]


def test_a_greeting_gets_a_greeting_back(app: Flask, zalo: ZaloFake) -> None:
    chat = Chat(app, zalo)
    newcomer = chat.say("Xin chào")
    assert newcomer[0]["text"].startswith("Chào mừng bạn đến với Cà phê Sữa Đá!")  # not a member: the invitation
    chat.share_info(name="Nguyễn Thị Lan", phone="84912345678")
    for text in ("xin chào", "XIN CHAO", "chào shop", "hi"):
        (answer,) = chat.say(text)
        assert answer["text"].startswith("Chào Lan! Cà phê Sữa Đá có thể giúp gì cho bạn?"), text
        assert [b["payload"] for b in answer["attachment"]["payload"]["buttons"]] == ["#DIEM", "#QUA", "#TROGIUP"]
    (question,) = chat.say("chào shop, hôm nay có bánh không")  # a sentence is not a greeting
    assert "chưa hiểu" in question["text"]


def test_very_long_unknown_text_is_quoted_short(app: Flask, zalo: ZaloFake) -> None:
    chat = Chat(app, zalo)
    chat.say("xin chào")
    (message,) = chat.say("a" * 5000)
    assert len(message["text"]) < 200 and "…" in message["text"]


def test_sticker_gets_a_hint(app: Flask, zalo: ZaloFake) -> None:
    from tests.helpers import fixture_bytes, post_event, run_jobs

    zalo.accept_messages()
    post_event(app.test_client(), fixture_bytes("user_send_sticker"))
    run_jobs(app)
    (sent,) = zalo.sent_messages()
    assert sent["message"]["text"].startswith("Cảm ơn bạn! Mình chỉ đọc được tin nhắn chữ.")


def test_unfollow_marks_inactive_without_a_message(app: Flask, zalo: ZaloFake, session: Session) -> None:
    chat = Chat(app, zalo)
    assert len(chat.follow()) == 2
    assert chat.unfollow() == []
    user = session.scalars(select(ZaloUser)).one()
    assert not user.is_follower and user.unfollowed_at is not None


def test_interaction_time_is_recorded_from_the_event(app: Flask, zalo: ZaloFake, session: Session) -> None:
    Chat(app, zalo).say("help")
    user = session.scalars(select(ZaloUser)).one()
    assert user.last_interaction_at is not None
    assert user.last_interaction_at.isoformat().startswith("2025-11-23T04:00:01")  # the event's time, UTC
