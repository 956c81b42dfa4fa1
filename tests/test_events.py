import json
from datetime import date

import pytest

from tests.helpers import fixture_bytes
from zalo.events import (
    ClickChatNow,
    Follow,
    ImageMessage,
    MalformedEvent,
    MessageReceipt,
    OaEcho,
    SubmitInfo,
    TextMessage,
    Unfollow,
    UnknownEvent,
    UserMessage,
    dedupe_key,
    parse_event,
)

USER = "8958041078911298472"
OA = "4024926008133882615"  # tests.conftest's ZALO_OA_ID


def parse(name: str, oa_id: str = OA):
    return parse_event(json.loads(fixture_bytes(name)), oa_id=oa_id)


@pytest.mark.parametrize(
    ("fixture", "cls"),
    [
        ("follow", Follow),
        ("unfollow", Unfollow),
        ("user_send_text", TextMessage),
        ("user_send_image", ImageMessage),
        ("user_send_sticker", UserMessage),
        ("user_submit_info_v1", SubmitInfo),
        ("user_submit_info_v2", SubmitInfo),
        ("user_click_chatnow", ClickChatNow),
        ("user_received_message", MessageReceipt),
        ("user_seen_message", MessageReceipt),
        ("oa_send_text", OaEcho),
        ("add_user_to_tag", UnknownEvent),
    ],
)
def test_every_recorded_payload_parses_to_its_type(fixture: str, cls: type) -> None:
    event = parse(fixture)
    assert type(event) is cls
    if cls is not OaEcho and cls is not UnknownEvent:
        assert event.user_id == USER


def test_ids_stay_strings_and_timestamp_is_ms() -> None:
    event = parse("follow")
    assert event.user_id == "8958041078911298472"  # a float would round this 64-bit id
    assert event.occurred_at is not None and event.occurred_at.year == 2024
    assert isinstance(event, Follow) and event.source == "oa_profile"


def test_text_message_fields() -> None:
    event = parse("user_send_text")
    assert isinstance(event, TextMessage)
    assert event.text == "#TRỢ GIÚP" and event.msg_id == "96d3cdf3af150460909"
    assert event.is_interaction


def test_image_urls() -> None:
    event = parse("user_send_image")
    assert isinstance(event, ImageMessage)
    assert event.image_urls == ["https://photo.zdn.vn/full.jpg"]


def test_submit_info_older_shape() -> None:
    event = parse("user_submit_info_v1")
    assert isinstance(event, SubmitInfo)
    assert event.info.name == "Nguyễn Văn A" and event.info.phone == "84912345678"
    assert event.info.city == "Hồ Chí Minh" and event.info.district == "Quận 1"
    assert event.info.birthday is None


def test_submit_info_newer_shape() -> None:
    event = parse("user_submit_info_v2")
    assert isinstance(event, SubmitInfo)
    assert event.info.name == "Trần Thị B" and event.info.phone == "84987654321"
    assert event.info.birthday == date(1999, 10, 30)
    assert event.info.city == "Hà Nội" and event.info.address == "5 Hàng Khay"


def test_receipts_carry_message_ids() -> None:
    seen = parse("user_seen_message")
    assert isinstance(seen, MessageReceipt)
    assert seen.message_ids == ("a7a8e8ff0bbb13bd4ce4", "b7a8e8ff0bbb13bd4ce5") and seen.seen
    assert not seen.is_interaction and not seen.is_template_delivery


@pytest.mark.parametrize("name", ["user_received_message", "user_seen_message"])
def test_a_receipts_user_is_the_side_that_is_not_the_oa_whatever_the_order(name: str) -> None:
    body = json.loads(fixture_bytes(name))
    assert body["sender"]["id"] == OA  # as chatwoot reads them
    assert parse_event(body, oa_id=OA).user_id == USER
    body["sender"], body["recipient"] = body["recipient"], body["sender"]  # as one integration note says
    flipped = parse_event(body, oa_id=OA)
    assert flipped.user_id == USER and flipped.oa_id == OA


def test_a_receipt_names_no_user_when_the_oa_id_is_unknown_or_absent() -> None:
    assert parse("user_received_message", oa_id="").user_id is None  # never guessed by position
    assert parse("user_received_message", oa_id="another-oa").user_id is None


def test_a_template_delivery_is_to_a_phone_not_a_user() -> None:
    event = parse("user_received_message_template")
    assert isinstance(event, MessageReceipt) and event.is_template_delivery
    assert event.user_id is None and event.message_ids == ("15a0cc0bbb13bd4ce403",)


def test_dedupe_key_prefers_msg_id_and_is_stable() -> None:
    text = parse("user_send_text")
    assert dedupe_key(text) == "m:user_send_text:96d3cdf3af150460909"
    follow_a, follow_b = parse("follow"), parse("follow")
    assert dedupe_key(follow_a) == dedupe_key(follow_b)
    assert dedupe_key(follow_a) != dedupe_key(parse("unfollow"))


def test_missing_event_name_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        parse_event({"timestamp": "1"})


def test_odd_field_types_do_not_crash() -> None:
    event = parse_event({"event_name": "user_send_text", "sender": "x", "message": ["a"], "timestamp": {"a": 1}})
    assert isinstance(event, TextMessage) and event.user_id is None and event.text == ""
