"""The program settings form: fields <-> ProgramRules, with Vietnamese error messages per field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from console.forms import read_int
from console.messages import placeholder_error
from loyalty.program import ProgramRules, Rate

INT_FIELDS = {  # name: (label, minimum, maximum, optional)
    "earn_points": ("Số điểm", 0, 10_000, False),
    "earn_unit_amount": ("Mỗi số tiền (đ)", 1_000, 100_000_000, False),
    "min_bill_amount": ("Hóa đơn tối thiểu (đ)", 0, 1_000_000_000, False),
    "max_points_per_bill": ("Tối đa mỗi hóa đơn", 0, 1_000_000, True),
    "max_points_per_day": ("Tối đa mỗi ngày", 0, 1_000_000, True),
    "point_value_vnd": ("Giá trị 1 điểm (đ)", 1, 1_000_000, False),
    "expiry_months": ("Điểm hết hạn sau (tháng)", 1, 120, True),
    "tier_window_months": ("Xét hạng theo (tháng)", 1, 120, True),
    "referral_bonus_value": ("Thưởng giới thiệu", 0, 1_000_000, False),
    "daily_hour": ("Giờ gửi tin hằng ngày", 0, 23, False),
    "expiry_reminder_days": ("Nhắc trước (ngày)", 1, 90, False),
    "birthday_reward_id": ("Quà tặng kèm lời chúc sinh nhật", 1, 10**12, True),
    "lapsed_days": ("Khách không mua trong (ngày)", 14, 730, False),
    "vip_reminder_days": ("Nhắc gia hạn VIP trước (ngày)", 1, 60, False),
    "lapsed_reward_id": ("Quà mời khách quay lại", 1, 10**12, True),
    "points_payment_min_balance": ("Số điểm tối thiểu để trừ vào hóa đơn", 0, 1_000_000, False),
    "welcome_bonus_points": ("Điểm chào mừng khi đăng ký", 0, 1_000_000, False),
    "referee_bonus_points": ("Người được giới thiệu nhận", 0, 1_000_000, False),
    "referral_affiliate_pct": ("Hoa hồng cho người giới thiệu (%)", 0, 50, False),
    "referral_affiliate_days": ("Thời gian hưởng hoa hồng (ngày)", 1, 3650, False),
    "referral_affiliate_cap": ("Hoa hồng tối đa (điểm)", 0, 100_000_000, False),
    "profile_bonus_points": ("Điểm thưởng khi cho biết ngày sinh", 0, 1_000_000, False),
    "points_payment_max_pct": ("Trừ tối đa (% hóa đơn)", 1, 100, False),
}
# Earn rates per channel (empty: the general rate). A store's own rate, set on the Cửa hàng page, wins over both.
CHANNELS = {"counter": "Thu ngân quét thẻ", "claim": "Khách quét mã trên hóa đơn", "pos": "Máy POS (API)"}
for _channel, _label in CHANNELS.items():
    INT_FIELDS[f"rate_{_channel}_points"] = (f"Số điểm — {_label}", 0, 10_000, True)
    INT_FIELDS[f"rate_{_channel}_amount"] = (f"Mỗi số tiền — {_label}", 1_000, 100_000_000, True)
TEXT_FIELDS = (
    "birthday_text",
    "birthday_text_no_gift",
    "tier_up_text",
    "lapsed_text",
    "lapsed_text_no_gift",
    "vip_reminder_text",
    "expiry_reminder_text",
)
FLAGS = (
    "birthday_enabled",
    "tier_up_enabled",
    "expiry_enabled",
    "tier_review_enabled",
    "tier_tags_enabled",
    "tier_counts_shown",
    "lapsed_enabled",
)


def to_form(rules: ProgramRules) -> dict[str, Any]:
    a = rules.automations
    return {
        "earn_points": rules.earn_rate.points,
        "earn_unit_amount": rules.earn_rate.unit_amount,
        "min_bill_amount": rules.min_bill_amount,
        "max_points_per_bill": rules.max_points_per_bill,
        "max_points_per_day": rules.max_points_per_day,
        "point_value_vnd": rules.point_value_vnd,
        "expiry_months": rules.expiry_months,
        "tier_window_months": rules.tier_window_months,
        "referral_bonus_kind": rules.referral_bonus_kind,
        "referral_bonus_value": rules.referral_bonus_value,
        "welcome_bonus_points": rules.welcome_bonus_points,
        "referee_bonus_points": rules.referee_bonus_points,
        "referral_affiliate_pct": rules.referral_affiliate_pct,
        "referral_affiliate_days": rules.referral_affiliate_days,
        "referral_affiliate_cap": rules.referral_affiliate_cap,
        "profile_bonus_points": rules.profile_bonus_points,
        "points_payment_enabled": rules.points_payment_enabled,
        "points_payment_min_balance": rules.points_payment_min_balance,
        "points_payment_max_pct": rules.points_payment_max_pct,
        "daily_hour": a.daily_hour,
        "expiry_reminder_days": a.expiry_reminder_days,
        "birthday_reward_id": a.birthday_reward_id,
        "birthday_on": a.birthday_on,
        "lapsed_days": a.lapsed_days,
        "vip_reminder_days": a.vip_reminder_days,
        "lapsed_reward_id": a.lapsed_reward_id,
        **{name: getattr(a, name) for name in TEXT_FIELDS + FLAGS},
        **{f"rate_{c}_{part}": None for c in CHANNELS for part in ("points", "amount")},
        **{f"rate_{c}_points": r.points for c, r in rules.channel_rates.items() if c in CHANNELS},
        **{f"rate_{c}_amount": r.unit_amount for c, r in rules.channel_rates.items() if c in CHANNELS},
    }


def from_form(form: Any, current: ProgramRules) -> tuple[ProgramRules | None, dict[str, str]]:
    """New rules from a submitted form, or None and {field: message} for each problem."""
    errors: dict[str, str] = {}
    ints = {
        name: read_int(form, name, label, low, high, errors, optional=optional)
        for name, (label, low, high, optional) in INT_FIELDS.items()
    }
    kind = form.get("referral_bonus_kind", "fixed")
    if kind not in ("off", "fixed", "percent"):
        errors["referral_bonus_kind"] = "Kiểu thưởng giới thiệu không hợp lệ."
    birthday_on = form.get("birthday_on", "day")
    if birthday_on not in ("day", "month"):
        errors["birthday_on"] = "Chọn gửi quà vào ngày sinh hoặc đầu tháng sinh."
    channel_rates = dict(current.channel_rates)
    for channel in CHANNELS:
        points, amount = ints[f"rate_{channel}_points"], ints[f"rate_{channel}_amount"]
        if (points is None) != (amount is None):
            errors[f"rate_{channel}_points"] = "Điền cả số điểm và số tiền, hoặc để trống cả hai (dùng mức chung)."
        elif points is None or amount is None:
            channel_rates.pop(channel, None)
        else:
            channel_rates[channel] = Rate(points, amount)
    texts = {name: str(form.get(name, "")).strip() for name in TEXT_FIELDS}
    for name in TEXT_FIELDS[:-1]:
        if not texts[name] or len(texts[name]) > 1000:
            errors[name] = "Nội dung tin nhắn cần 1-1.000 ký tự."
        elif problem := placeholder_error(texts[name], name):
            errors[name] = problem
    if errors:
        return None, errors
    automations = replace(
        current.automations,
        daily_hour=ints["daily_hour"] or 0,
        expiry_reminder_days=ints["expiry_reminder_days"] or 7,
        birthday_reward_id=ints["birthday_reward_id"],
        birthday_on=birthday_on,
        lapsed_days=ints["lapsed_days"] or 60,
        vip_reminder_days=ints["vip_reminder_days"] or 7,
        lapsed_reward_id=ints["lapsed_reward_id"],
        **{name: form.get(name) == "on" for name in FLAGS},
        birthday_text=texts["birthday_text"],
        birthday_text_no_gift=texts["birthday_text_no_gift"],
        tier_up_text=texts["tier_up_text"],
        expiry_reminder_text=texts["expiry_reminder_text"],
        lapsed_text=texts["lapsed_text"],
        lapsed_text_no_gift=texts["lapsed_text_no_gift"],
        vip_reminder_text=texts["vip_reminder_text"],
    )
    rules = replace(
        current,
        earn_rate=Rate(ints["earn_points"] or 0, ints["earn_unit_amount"] or 10_000),
        channel_rates=channel_rates,
        min_bill_amount=ints["min_bill_amount"] or 0,
        max_points_per_bill=ints["max_points_per_bill"],
        max_points_per_day=ints["max_points_per_day"],
        point_value_vnd=ints["point_value_vnd"] or 1_000,
        expiry_months=ints["expiry_months"],
        tier_window_months=ints["tier_window_months"],
        referral_bonus_kind=kind,
        referral_bonus_value=ints["referral_bonus_value"] or 0,
        welcome_bonus_points=ints["welcome_bonus_points"] or 0,
        referee_bonus_points=ints["referee_bonus_points"] or 0,
        referral_affiliate_pct=ints["referral_affiliate_pct"] or 0,
        referral_affiliate_days=ints["referral_affiliate_days"] or 90,
        referral_affiliate_cap=ints["referral_affiliate_cap"] or 0,
        profile_bonus_points=ints["profile_bonus_points"] or 0,
        points_payment_enabled=form.get("points_payment_enabled") == "on",
        points_payment_min_balance=ints["points_payment_min_balance"] or 0,
        points_payment_max_pct=ints["points_payment_max_pct"] or 50,
        automations=automations,
    )
    return rules, {}


def changes(before: ProgramRules, after: ProgramRules) -> dict[str, list[Any]]:
    """{field: [old, new]} for the audit log."""
    old, new = _flat(before.to_dict()), _flat(after.to_dict())
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
