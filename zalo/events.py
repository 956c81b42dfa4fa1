"""Typed Zalo OA webhook events, parsed from the JSON body (see shared/zalo-platform.md §1.3-1.4).

Parsing is a pure function so the webhook (to dedupe) and the worker (to route) share it.
All ids and timestamps stay strings: they are 64-bit values that floats would corrupt.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any


class MalformedEvent(ValueError):
    """The body is JSON but not an event we can read (e.g. no event_name)."""


@dataclass(frozen=True)
class ZaloEvent:
    event_name: str
    user_id: str | None
    timestamp: str
    app_id: str = ""
    oa_id: str = ""

    @property
    def occurred_at(self) -> datetime | None:
        """The event time (Zalo sends epoch milliseconds as a string)."""
        try:
            return datetime.fromtimestamp(int(self.timestamp) / 1000, UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return None

    @property
    def msg_id(self) -> str | None:
        return None

    @property
    def is_interaction(self) -> bool:
        """Whether this event opens the 7-day consultation window for the user (reference §2.5)."""
        return False


@dataclass(frozen=True)
class Follow(ZaloEvent):
    source: str = ""
    user_id_by_app: str | None = None

    @property
    def is_interaction(self) -> bool:
        return True


@dataclass(frozen=True)
class Unfollow(ZaloEvent):
    pass


@dataclass(frozen=True)
class UserMessage(ZaloEvent):
    """Any user_send_* event: text, image, sticker, file, link, location, ..."""

    message_id: str = ""
    text: str = ""
    attachments: tuple[dict[str, Any], ...] = ()
    user_id_by_app: str | None = None

    @property
    def msg_id(self) -> str | None:
        return self.message_id or None

    @property
    def is_interaction(self) -> bool:
        return True


@dataclass(frozen=True)
class TextMessage(UserMessage):
    pass


@dataclass(frozen=True)
class ImageMessage(UserMessage):
    @property
    def image_urls(self) -> list[str]:
        return [str(a.get("payload", {}).get("url", "")) for a in self.attachments if a.get("payload")]


@dataclass(frozen=True)
class SharedInfo:
    name: str = ""
    phone: str = ""
    birthday: date | None = None
    gender: str = ""
    address: str = ""
    city: str = ""
    district: str = ""
    ward: str = ""


@dataclass(frozen=True)
class SubmitInfo(ZaloEvent):
    """user_submit_info: the answer to a request_user_info card, in either payload shape."""

    info: SharedInfo = field(default_factory=SharedInfo)
    user_id_by_app: str | None = None

    @property
    def is_interaction(self) -> bool:
        return True


@dataclass(frozen=True)
class ClickChatNow(ZaloEvent):
    @property
    def is_interaction(self) -> bool:
        return True


@dataclass(frozen=True)
class MessageReceipt(ZaloEvent):
    """user_received_message / user_seen_message: a message the OA sent was delivered to or seen by the user.

    Sources disagree on which side is the user (chatwoot's Zalo channel and a Salesforce connector read the
    OA as the sender, a Vietnamese integration note the reverse), so parse_event decides by comparing both
    ids with the configured OA id, never by position; without an OA id, user_id stays None. A receipt with
    `delivery_time` is a template (ZNS/ZBS) delivery, whose other side is a phone number, not a user.
    """

    message_ids: tuple[str, ...] = ()
    delivery_time: str = ""

    @property
    def msg_id(self) -> str | None:
        return ",".join(self.message_ids) or None

    @property
    def seen(self) -> bool:
        return self.event_name == "user_seen_message"

    @property
    def is_template_delivery(self) -> bool:
        return bool(self.delivery_time)


@dataclass(frozen=True)
class OaEcho(ZaloEvent):
    """oa_send_*: Zalo echoes everything the OA sends; acting on them would loop."""


@dataclass(frozen=True)
class UnknownEvent(ZaloEvent):
    """Any other event: stored and acknowledged, handled by the bot's default."""


MAX_DEPTH = 16  # real events nest 4 levels at most
_EVENT_NAME = re.compile(r"[a-z0-9_]{1,64}")
_USER_ID = re.compile(r"[0-9A-Za-z_.-]{1,32}")  # Zalo's are 64-bit numbers as strings; the emulator's too


def clean_body(value: Any, depth: int = 0) -> Any:
    """The body as it can be stored anywhere: no NUL (PostgreSQL's JSONB refuses it), no lone surrogate
    (not UTF-8), at most MAX_DEPTH levels. Raises MalformedEvent for deeper nesting."""
    if depth > MAX_DEPTH:
        raise MalformedEvent("nested too deep")
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): clean_body(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_body(v, depth + 1) for v in value]
    return value


def _clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # a lone surrogate becomes U+FFFD


def parse_event(body: dict[str, Any], oa_id: str = "") -> ZaloEvent:
    """Turn a webhook body into a typed event; `oa_id` (the configured OA) tells the OA's side of a receipt.

    Raises MalformedEvent if there is no event name, or a name or user id no Zalo event has (they are
    stored in columns of 64 and 32 characters, and a row that cannot be stored must not become a 500).
    """
    name = body.get("event_name")
    if not isinstance(name, str) or not name:
        raise MalformedEvent("no event_name")
    if not _EVENT_NAME.fullmatch(name):
        raise MalformedEvent(f"event_name {name[:80]!r}")
    event = _parse_event(body, name, oa_id)
    if event.user_id is not None and not _USER_ID.fullmatch(event.user_id):
        raise MalformedEvent(f"user id {event.user_id[:80]!r}")
    return event


def _parse_event(body: dict[str, Any], name: str, oa_id: str) -> ZaloEvent:
    base = {
        "event_name": name,
        "timestamp": _s(body.get("timestamp")),
        "app_id": _s(body.get("app_id")),
        "oa_id": _s(body.get("oa_id")) or _s(_obj(body.get("recipient")).get("id")),
    }
    if name.startswith("oa_send_"):
        return OaEcho(user_id=_s(_obj(body.get("recipient")).get("id")) or None, **base)
    if name in _RECEIPTS:
        return _parse_receipt(body, base, oa_id)
    parser = _PARSERS.get(name)
    if parser is None and name.startswith("user_send_"):
        parser = _parse_user_message
    if parser is None:
        return UnknownEvent(user_id=_guess_user(body), **base)
    return parser(body, base)


def dedupe_key(event: ZaloEvent) -> str:
    """A key that is the same for every redelivery of one event and differs between events."""
    if event.msg_id:
        return f"m:{event.event_name}:{event.msg_id}"[:128]
    digest = hashlib.sha256(f"{event.event_name}|{event.user_id or ''}|{event.timestamp}".encode()).hexdigest()
    return f"h:{digest}"


def _parse_follow(body: dict[str, Any], base: dict[str, str]) -> ZaloEvent:
    user = _s(_obj(body.get("follower")).get("id")) or _s(body.get("user_id")) or None
    if body["event_name"] == "unfollow":
        return Unfollow(user_id=user, **base)
    return Follow(user_id=user, source=_s(body.get("source")), user_id_by_app=_opt(body.get("user_id_by_app")), **base)


def _parse_user_message(body: dict[str, Any], base: dict[str, str]) -> ZaloEvent:
    message = _obj(body.get("message"))
    attachments = tuple(a for a in message.get("attachments") or () if isinstance(a, dict))
    cls = {"user_send_text": TextMessage, "user_send_image": ImageMessage}.get(body["event_name"], UserMessage)
    return cls(
        user_id=_s(_obj(body.get("sender")).get("id")) or None,
        message_id=_s(message.get("msg_id")),
        text=_s(message.get("text")),
        attachments=attachments,
        user_id_by_app=_opt(body.get("user_id_by_app")),
        **base,
    )


def _parse_submit_info(body: dict[str, Any], base: dict[str, str]) -> ZaloEvent:
    raw = _obj(body.get("info"))
    address = _obj(raw.get("full_address"))  # newer shape nests the address
    info = SharedInfo(
        name=_s(raw.get("name")).strip(),
        phone=_s(raw.get("phone")).strip(),
        birthday=_parse_dob(_s(raw.get("user_dob") or raw.get("dob"))),
        gender=_s(raw.get("gender")),
        address=_s(raw.get("address") or address.get("user_address")),
        city=_s(raw.get("city") or address.get("user_city")),
        district=_s(raw.get("district") or address.get("user_district")),
        ward=_s(raw.get("ward") or address.get("user_ward")),
    )
    return SubmitInfo(
        user_id=_s(_obj(body.get("sender")).get("id")) or _s(body.get("user_id")) or None,
        info=info,
        user_id_by_app=_opt(body.get("user_id_by_app")),
        **base,
    )


def _parse_chatnow(body: dict[str, Any], base: dict[str, str]) -> ZaloEvent:
    user = _s(body.get("user_id")) or _s(_obj(body.get("sender")).get("id")) or None
    return ClickChatNow(user_id=user, **base)


def _parse_receipt(body: dict[str, Any], base: dict[str, str], oa_id: str) -> ZaloEvent:
    message = _obj(body.get("message"))
    listed = message.get("msg_ids")
    ids: list[Any] = listed if isinstance(listed, list) else [message.get("msg_id")]
    sender, recipient = _s(_obj(body.get("sender")).get("id")), _s(_obj(body.get("recipient")).get("id"))
    delivery_time = _s(message.get("delivery_time"))
    user = None
    if oa_id and not delivery_time and oa_id in (sender, recipient) and sender != recipient:
        user = recipient if sender == oa_id else sender
    return MessageReceipt(
        user_id=user or None,
        message_ids=tuple(_s(i) for i in ids if i),
        delivery_time=delivery_time,
        **{**base, "oa_id": oa_id if oa_id in (sender, recipient) else ""},
    )


_PARSERS = {
    "follow": _parse_follow,
    "unfollow": _parse_follow,
    "user_submit_info": _parse_submit_info,
    "user_click_chatnow": _parse_chatnow,
}
_RECEIPTS = {"user_received_message", "user_seen_message"}


def _guess_user(body: dict[str, Any]) -> str | None:
    for candidate in (_obj(body.get("sender")).get("id"), body.get("user_id"), _obj(body.get("follower")).get("id")):
        if candidate:
            return _s(candidate)
    return None


def _parse_dob(text: str) -> date | None:
    """Zalo shares birthdays as dd/mm/yyyy; anything else is ignored rather than guessed."""
    try:
        return datetime.strptime(text.strip(), "%d/%m/%Y").date()
    except ValueError:
        return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _opt(value: Any) -> str | None:
    return _s(value) or None
