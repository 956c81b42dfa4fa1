"""Starting programs a new shop picks on the setup page: a café, a spa or a mini-mart.

Each is a complete, sensible program (earn rate, tiers with benefits, a few rewards, a birthday gift) that
the owner edits afterwards in the console; nothing here is special once applied. The figures follow what
Vietnamese shops of each kind commonly run: a café earns on small frequent bills, a spa on large rare ones,
a mini-mart on baskets in between.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.program import ProgramRules, Rate, save_rules
from models import Reward, Tier


@dataclass(frozen=True)
class TierPreset:
    name: str
    threshold: int
    benefits: str
    earn_multiplier_pct: int = 100
    reward_discount_pct: int = 0


@dataclass(frozen=True)
class RewardPreset:
    name: str
    points_cost: int
    description: str = ""
    validity_days: int = 30
    per_member_limit: int | None = None


@dataclass(frozen=True)
class Preset:
    key: str
    label: str  # shown on the setup page
    summary: str
    rate: Rate
    tiers: tuple[TierPreset, ...]
    rewards: tuple[RewardPreset, ...]
    birthday_reward: str  # the name of one of `rewards`, given on the member's birthday


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            key="cafe",
            label="Quán cà phê, trà sữa",
            summary="1 điểm mỗi 10.000đ; đổi 1 ly từ 50 điểm; quà sinh nhật 1 ly.",
            rate=Rate(points=1, unit_amount=10_000),
            tiers=(
                TierPreset("Thành viên", 0, "Tích 1 điểm cho mỗi 10.000đ"),
                TierPreset("Bạc", 300, "Tích điểm x1,2", earn_multiplier_pct=120),
                TierPreset("Vàng", 1000, "Tích điểm x1,5", earn_multiplier_pct=150),
                TierPreset("Kim cương", 3000, "Tích điểm x2, đổi quà ít hơn 5% điểm", 200, 5),
            ),
            rewards=(
                RewardPreset("Một ly size M", 50, "Đồ uống bất kỳ size M"),
                RewardPreset("Bánh ngọt", 40, validity_days=14),
                RewardPreset("Voucher 100.000đ", 500, validity_days=60, per_member_limit=1),
            ),
            birthday_reward="Một ly size M",
        ),
        Preset(
            key="spa",
            label="Spa, salon, thẩm mỹ",
            summary="1 điểm mỗi 50.000đ; đổi dịch vụ từ 100 điểm; quà sinh nhật gội dưỡng sinh.",
            rate=Rate(points=1, unit_amount=50_000),
            tiers=(
                TierPreset("Thành viên", 0, "Tích 1 điểm cho mỗi 50.000đ"),
                TierPreset("Bạc", 200, "Tích điểm x1,2", earn_multiplier_pct=120),
                TierPreset("Vàng", 600, "Tích điểm x1,5; ưu tiên đặt lịch", earn_multiplier_pct=150),
                TierPreset("Kim cương", 1500, "Tích điểm x2; đổi quà ít hơn 10% điểm", 200, 10),
            ),
            rewards=(
                RewardPreset("Gội đầu dưỡng sinh", 100, validity_days=60),
                RewardPreset("Giảm 20% một liệu trình", 200, validity_days=60, per_member_limit=1),
                RewardPreset("Voucher 500.000đ", 800, validity_days=90, per_member_limit=1),
            ),
            birthday_reward="Gội đầu dưỡng sinh",
        ),
        Preset(
            key="minimart",
            label="Cửa hàng tiện lợi, tạp hóa",
            summary="1 điểm mỗi 20.000đ; đổi voucher từ 100 điểm; quà sinh nhật voucher 20.000đ.",
            rate=Rate(points=1, unit_amount=20_000),
            tiers=(
                TierPreset("Thành viên", 0, "Tích 1 điểm cho mỗi 20.000đ"),
                TierPreset("Bạc", 500, "Tích điểm x1,2", earn_multiplier_pct=120),
                TierPreset("Vàng", 2000, "Tích điểm x1,5", earn_multiplier_pct=150),
            ),
            rewards=(
                RewardPreset("Voucher 20.000đ", 100),
                RewardPreset("Voucher 50.000đ", 230),
                RewardPreset("Voucher 100.000đ", 450, validity_days=60),
            ),
            birthday_reward="Voucher 20.000đ",
        ),
    )
}


class ProgramExists(ValueError):
    """The shop already has tiers: a preset never overwrites a program someone set up."""


def apply_preset(session: Session, preset: Preset, *, by: str, now: datetime) -> None:
    """Write the preset's rules, tiers and rewards into an empty program (ProgramExists otherwise)."""
    if session.scalar(select(Tier.id).limit(1)) is not None:
        raise ProgramExists(preset.key)
    session.add_all(
        Tier(
            name=t.name,
            threshold=t.threshold,
            benefits=t.benefits,
            earn_multiplier_pct=t.earn_multiplier_pct,
            reward_discount_pct=t.reward_discount_pct,
        )
        for t in preset.tiers
    )
    rewards = [
        Reward(
            name=r.name,
            description=r.description,
            points_cost=r.points_cost,
            validity_days=r.validity_days,
            per_member_limit=r.per_member_limit,
            created_at=now,
        )
        for r in preset.rewards
    ]
    session.add_all(rewards)
    session.flush()
    gift = next(r.id for r in rewards if r.name == preset.birthday_reward)
    rules = ProgramRules(earn_rate=preset.rate)
    save_rules(session, replace(rules, automations=replace(rules.automations, birthday_reward_id=gift)), updated_by=by)
