"""Program rules (earning, promotions, caps, point value, expiry, referral bonus), stored as one JSON row.

Defaults are what a small shop starts with: 1 point per 10.000đ, points expire after 12 months,
tiers qualify on the last 12 months, 1 point is worth 1.000đ.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.errors import InvalidSettings
from models import ProgramSettings, utcnow
from models.config import cached

REFERRAL_KINDS = ("off", "fixed", "percent")


@dataclass(frozen=True)
class Rate:
    """`points` points per `unit_amount` đ, rounded down."""

    points: int = 1
    unit_amount: int = 10_000

    def points_for(self, amount: int) -> int:
        return amount * self.points // self.unit_amount


@dataclass(frozen=True)
class Promotion:
    """A multiplier on a date range and/or on some weekdays (0 = Monday ... 6 = Sunday)."""

    name: str
    multiplier_pct: int = 200
    starts_on: date | None = None
    ends_on: date | None = None
    weekdays: tuple[int, ...] = ()

    def applies_on(self, local_day: date) -> bool:
        if self.starts_on and local_day < self.starts_on:
            return False
        if self.ends_on and local_day > self.ends_on:
            return False
        return not self.weekdays or local_day.weekday() in self.weekdays


@dataclass(frozen=True)
class Automations:
    """The background messages, each switchable and editable. Texts use {ten}, {diem}, {hang} and the
    fields named per automation; times are the shop's local time."""

    daily_hour: int = 9  # birthday offers and expiry reminders go out at this hour
    birthday_enabled: bool = True
    birthday_on: str = "day"  # "day": on the birthday; "month": on the 1st, for everyone born that month
    birthday_reward_id: int | None = None  # the gift voucher's reward (None: a greeting only)
    birthday_text: str = "Chúc mừng sinh nhật {ten}! 🎂 {shop} tặng bạn {qua}: mã {ma}, dùng đến {han}."
    birthday_text_no_gift: str = "Chúc mừng sinh nhật {ten}! 🎂 Chúc bạn một năm thật vui từ {shop}."
    tier_up_enabled: bool = True
    tier_up_text: str = "Chúc mừng {ten} đã lên hạng {hang}! 🎉 Quyền lợi của bạn: {quyen_loi}"
    expiry_enabled: bool = True
    expiry_reminder_days: int = 7
    expiry_reminder_text: str = '{ten} ơi, {so_diem} điểm của bạn sẽ hết hạn ngày {ngay}. Nhắn "quà" để đổi ngay nhé!'
    tier_review_enabled: bool = True
    tier_review_day: int = 1  # day of the month
    tier_tags_enabled: bool = False  # mirror each member's tier into an OA tag (jobs/tags.py)
    tier_counts_shown: bool = False  # the chat's "hạng" says how many members each tier has (shops rarely want it)
    # Paid membership: the member hears this many days before their period ends (unless they renewed).
    vip_reminder_days: int = 7
    vip_reminder_text: str = "{ten} ơi, gói {goi} của bạn hết hạn ngày {ngay}. Gia hạn tại quầy để giữ hạng {hang} nhé!"
    # Lapsed-member care: members who bought nothing for lapsed_days get one message (and a voucher) per lapse.
    lapsed_enabled: bool = False
    lapsed_days: int = 60
    lapsed_reward_id: int | None = None
    lapsed_text: str = "{ten} ơi, lâu rồi {shop} chưa gặp bạn! Tặng bạn {qua}: mã {ma}, dùng đến {han}. Ghé quán nhé!"
    lapsed_text_no_gift: str = "{ten} ơi, lâu rồi {shop} chưa gặp bạn! Bạn đang có {diem} điểm, ghé quán đổi quà nhé."

    def validate(self) -> list[str]:
        problems = []
        if not 0 <= self.daily_hour <= 23:
            problems.append("daily hour must be 0-23")
        if self.birthday_on not in ("day", "month"):
            problems.append("birthday offers run on the 'day' or in the 'month'")
        if not 1 <= self.expiry_reminder_days <= 90 or not 1 <= self.tier_review_day <= 28:
            problems.append("reminder days 1-90, review day 1-28")
        if not 1 <= self.vip_reminder_days <= 60:
            problems.append("VIP renewal reminders 1-60 days ahead")
        if not 14 <= self.lapsed_days <= 730:
            problems.append("a member lapses after 14-730 days without buying")
        return problems


@dataclass(frozen=True)
class ProgramRules:
    earn_rate: Rate = field(default_factory=Rate)
    channel_rates: dict[str, Rate] = field(default_factory=dict)  # e.g. {"pos": Rate(...)}
    min_bill_amount: int = 0
    max_points_per_bill: int | None = None
    max_points_per_day: int | None = None
    promotions: tuple[Promotion, ...] = ()
    point_value_vnd: int = 1_000
    expiry_months: int | None = 12  # None: points never expire
    tier_window_months: int | None = 12  # None: tiers qualify on lifetime points
    referral_bonus_kind: str = "fixed"
    referral_bonus_value: int = 50  # points (fixed) or percent of the referee's first bill (percent)
    referee_bonus_points: int = 0  # the new member's own points on their first purchase (0: none)
    referral_affiliate_pct: int = 0  # the referrer's share of the referee's later bills, % (0: none)
    referral_affiliate_days: int = 90  # ... for this many days after the referee joined
    referral_affiliate_cap: int = 0  # ... at most this many points per referee in all (0: no cap)
    # Engagement points (loyalty.bonuses), 0 = off: on joining through the chat or at the counter, and once for
    # completing the profile with a birthday.
    welcome_bonus_points: int = 0
    profile_bonus_points: int = 0
    # Paying part of a bill with points at the till (loyalty.payments), at point_value_vnd đ a point.
    points_payment_enabled: bool = False
    points_payment_min_balance: int = 0  # the member must hold at least this many points to pay with them
    points_payment_max_pct: int = 50  # points pay at most this share of a bill
    automations: Automations = field(default_factory=Automations)

    def validate(self) -> ProgramRules:
        problems = []
        rates = [self.earn_rate, *self.channel_rates.values()]
        if any(r.points < 0 or r.unit_amount <= 0 for r in rates):
            problems.append("earn rates need points >= 0 and an amount > 0")
        if self.min_bill_amount < 0 or self.point_value_vnd <= 0:
            problems.append("minimum bill must be >= 0 and point value > 0")
        for cap in (self.max_points_per_bill, self.max_points_per_day):
            if cap is not None and cap < 0:
                problems.append("caps must be >= 0")
        for months in (self.expiry_months, self.tier_window_months):
            if months is not None and not 1 <= months <= 120:
                problems.append("months must be between 1 and 120")
        for promo in self.promotions:
            if promo.multiplier_pct < 100 or any(not 0 <= d <= 6 for d in promo.weekdays):
                problems.append(f"promotion {promo.name!r}: multiplier >= 100% and weekdays 0-6")
            if promo.starts_on and promo.ends_on and promo.ends_on < promo.starts_on:
                problems.append(f"promotion {promo.name!r} ends before it starts")
        if not 0 <= self.welcome_bonus_points <= 1_000_000 or not 0 <= self.profile_bonus_points <= 1_000_000:
            problems.append("bonuses must be 0-1,000,000 points")
        if self.referee_bonus_points < 0 or not 0 <= self.referral_affiliate_pct <= 50:
            problems.append("referee bonus >= 0, affiliate share 0-50%")
        if not 1 <= self.referral_affiliate_days <= 3650 or self.referral_affiliate_cap < 0:
            problems.append("affiliate period 1-3650 days, cap >= 0")
        if self.points_payment_min_balance < 0 or not 1 <= self.points_payment_max_pct <= 100:
            problems.append("paying with points: minimum balance >= 0, share of the bill 1-100%")
        if self.referral_bonus_kind not in REFERRAL_KINDS or self.referral_bonus_value < 0:
            problems.append("referral bonus kind must be off, fixed or percent, with a value >= 0")
        problems.extend(self.automations.validate())
        if problems:
            raise InvalidSettings("; ".join(problems))
        return self

    def rate_for(self, channel: str | None) -> Rate:
        return self.channel_rates.get(channel or "", self.earn_rate)

    def promotion_pct(self, local_day: date) -> tuple[int, str | None]:
        """The best promotion multiplier for the day (they do not stack) and its name."""
        best = max(
            (p for p in self.promotions if p.applies_on(local_day)), key=lambda p: p.multiplier_pct, default=None
        )
        return (best.multiplier_pct, best.name) if best else (100, None)

    def expiry_for(self, earned_at: datetime) -> datetime | None:
        return add_months(earned_at, self.expiry_months) if self.expiry_months else None

    def tier_window_start(self, now: datetime) -> datetime | None:
        return add_months(now, -self.tier_window_months) if self.tier_window_months else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["promotions"] = [
            {**asdict(p), "starts_on": _iso(p.starts_on), "ends_on": _iso(p.ends_on), "weekdays": list(p.weekdays)}
            for p in self.promotions
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramRules:
        try:
            rules = replace(
                cls(),
                **{
                    k: v
                    for k, v in data.items()
                    if k not in ("earn_rate", "channel_rates", "promotions", "automations")
                },
            )
            if "automations" in data:
                known = {f.name for f in fields(Automations)}  # retired keys (template_id, template_param:
                # ZBS templates now live in zalo_templates, one per purpose) are ignored, not an error
                automations = {k: v for k, v in data["automations"].items() if k in known}
                rules = replace(rules, automations=Automations(**automations))
            if "earn_rate" in data:
                rules = replace(rules, earn_rate=Rate(**data["earn_rate"]))
            if "channel_rates" in data:
                rules = replace(rules, channel_rates={k: Rate(**v) for k, v in data["channel_rates"].items()})
            if "promotions" in data:
                rules = replace(rules, promotions=tuple(_promotion(p) for p in data["promotions"]))
        except (TypeError, ValueError) as exc:
            raise InvalidSettings(f"unreadable program settings: {exc}") from exc
        return rules.validate()


def load_rules(session: Session) -> ProgramRules:
    """The program's rules: read and validated once per change of the settings (models.config), not per event."""
    return cached(session, "program_rules", _read_rules)


def _read_rules(session: Session) -> ProgramRules:
    row = session.scalar(select(ProgramSettings).order_by(ProgramSettings.id).limit(1))
    return ProgramRules.from_dict(row.data) if row else ProgramRules()


def save_rules(session: Session, rules: ProgramRules, updated_by: str | None = None) -> None:
    rules.validate()
    row = session.scalar(select(ProgramSettings).order_by(ProgramSettings.id).limit(1))
    if row is None:
        row = ProgramSettings()
        session.add(row)
    row.data = rules.to_dict()
    row.updated_at = utcnow()
    row.updated_by = updated_by


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month `months` later (or earlier), clamped to the month's end (31/01 + 1 = 28/02)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def start_of_local_day(moment: datetime, tz: Any) -> datetime:
    local = moment.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def end_of_local_day(moment: datetime, tz: Any) -> datetime:
    return start_of_local_day(moment, tz) + timedelta(days=1)


def _promotion(data: dict[str, Any]) -> Promotion:
    return Promotion(
        name=str(data["name"]),
        multiplier_pct=int(data.get("multiplier_pct", 200)),
        starts_on=date.fromisoformat(data["starts_on"]) if data.get("starts_on") else None,
        ends_on=date.fromisoformat(data["ends_on"]) if data.get("ends_on") else None,
        weekdays=tuple(int(d) for d in data.get("weekdays") or ()),
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
