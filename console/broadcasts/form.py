"""The broadcast form: fields -> name, text, Segment and send time, with Vietnamese errors per field."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import buttons
from console.forms import read_date, read_int
from console.messages import placeholder_error
from loyalty.segments import Segment

MAX_TEXT = 2000
# Buttons a broadcast may carry: each sends a chat command the bot answers ("Đổi quà" -> the catalog).
BUTTONS = {
    "balance": buttons.BALANCE,
    "rewards": buttons.REWARDS,
    "card": buttons.CARD,
    "referral": buttons.REFERRAL,
    "tiers": buttons.TIERS,
}
# A time a few minutes in the past is "now" (the form was filled slowly), not a mistake.
PAST_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class BroadcastDraft:
    name: str
    text: str
    segment: Segment
    send_at: datetime | None  # None: now
    promotional: bool
    buttons: list[dict[str, str]]
    reward_id: int | None = None  # a gift voucher for each recipient


def draft_from_form(form: Any, now: datetime, tz: ZoneInfo) -> tuple[BroadcastDraft | None, dict[str, str]]:
    """The draft, or None and {field: message} for each problem."""
    errors: dict[str, str] = {}
    followers = form.get("audience") == "followers"  # everyone following the OA, members or not
    reward_raw = str(form.get("reward_id", "")).strip()
    reward_id = int(reward_raw) if reward_raw.isdigit() and len(reward_raw) <= 18 else None
    if reward_raw and reward_id is None:
        errors["reward_id"] = "Quà không hợp lệ."
    if followers and reward_id is not None:
        errors["reward_id"] = "Chỉ thành viên nhận được voucher: chọn “Thành viên” hoặc bỏ quà."
    text = str(form.get("text", "")).strip()
    if text and reward_id is not None and "{ma}" not in text:  # the voucher must reach them, whatever the text
        text = f"{text}\nQuà của bạn: {{qua}} — mã {{ma}}, dùng đến {{han}}."
    if not text:
        errors["text"] = "Cần nội dung tin nhắn."
    elif len(text) > MAX_TEXT:
        errors["text"] = f"Nội dung tối đa {MAX_TEXT:,} ký tự (hiện có {len(text):,}).".replace(",", ".")
    elif problem := placeholder_error(
        text, "broadcast_followers" if followers else "broadcast_gift" if reward_id else "broadcast"
    ):
        errors["text"] = problem
    numbers = {
        name: read_int(form, name, label, low, high, errors)
        for name, (label, low, high) in {
            "birthday_month": ("Tháng sinh", 1, 12),
            "inactive_days": ("Số ngày không ghé", 1, 3650),
            "points_min": ("Điểm từ", 0, 10**9),
            "points_max": ("Điểm đến", 0, 10**9),
        }.items()
    }
    if numbers["points_min"] is not None and numbers["points_max"] is not None:
        if numbers["points_min"] > numbers["points_max"]:
            errors["points_max"] = "Điểm đến phải lớn hơn hoặc bằng điểm từ."
    joined_from = read_date(form, "joined_from", errors)
    joined_to = read_date(form, "joined_to", errors)
    send_at = _send_at(form, now, tz, errors)
    try:
        tier_ids = tuple(int(t) for t in form.getlist("tier_ids"))
    except ValueError:
        errors["tier_ids"], tier_ids = "Hạng không hợp lệ.", ()
    group = " ".join(str(form.get("group", "")).split())[:60] or None
    segment = Segment(
        tier_ids=tier_ids,
        group=group,
        birthday_month=numbers["birthday_month"],
        joined_from=joined_from,
        joined_to=joined_to,
        inactive_days=numbers["inactive_days"],
        points_min=numbers["points_min"],
        points_max=numbers["points_max"],
    )
    if followers and segment.has_member_filters:
        errors["audience"] = (
            "Bộ lọc hạng, ngày sinh, điểm… chỉ dành cho thành viên: bỏ trống khi gửi mọi người quan tâm OA."
        )
    if errors:
        return None, errors
    segment = replace(segment, followers=followers)
    name = str(form.get("name", "")).strip()[:200] or f"Chiến dịch {now.astimezone(tz):%d/%m/%Y}"
    chosen = [BUTTONS[k] for k in BUTTONS if k in form.getlist("buttons")]
    picked = [{"title": b.title, "payload": b.payload} for b in chosen]
    return BroadcastDraft(name, text, segment, send_at, form.get("promotional") == "on", picked, reward_id), {}


def parse_local_time(raw: str, tz: ZoneInfo) -> datetime | None:
    """'2026-12-01T09:30' (a datetime-local field) or '01/12/2026 09:30', in the shop's timezone."""
    raw = raw.strip()
    for pattern in ("%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(raw, pattern).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _send_at(form: Any, now: datetime, tz: ZoneInfo, errors: dict[str, str]) -> datetime | None:
    if form.get("when", "now") != "later":
        return None
    when = parse_local_time(str(form.get("send_at", "")), tz)
    if when is None:
        errors["send_at"] = "Chọn ngày giờ gửi, ví dụ 01/12/2026 09:30."
        return None
    if when < now - PAST_GRACE:
        errors["send_at"] = "Thời điểm gửi đã qua. Chọn một thời điểm sắp tới hoặc “Gửi ngay”."
        return None
    return max(when, now)


def form_values(form: Any) -> dict[str, Any]:
    """What to show in the fields: defaults on a new form, the values as typed after a submit."""
    if not form:
        return {"when": "now", "promotional": True, "tier_ids": [], "buttons": ["rewards"], "audience": "members"}
    values: dict[str, Any] = form.to_dict()
    values["tier_ids"] = [int(t) for t in form.getlist("tier_ids") if t.isdigit()]
    values["promotional"] = form.get("promotional") == "on"
    values["buttons"] = form.getlist("buttons")
    values.setdefault("when", "now")
    values.setdefault("audience", "members")
    return values
