"""The demo shop: settings that point the Zalo client at the local emulator, and seed data to play with."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.staff import create_staff
from loyalty import earning, rewards
from loyalty.consent import record_consent
from loyalty.members import create_member
from loyalty.program import ProgramRules, Promotion, save_rules
from models import Cause, Member, Reward, Staff, StampCard, Store, Tier, VipPlan, ZaloTemplate
from tichdiem.config import Settings

DEMO_PASSWORD = "demo1234"
DEMO_LOGINS = (
    ("chu", "owner", "Chủ quán Hạnh", None),
    ("marketing", "marketer", "Marketing Vy", None),
    ("thungan", "cashier", "Thu ngân Hoa", "Q1"),
)


def demo_settings(settings: Settings, base_url: str) -> Settings:
    """No Zalo account configured: talk to the emulator served by this same process."""
    base = base_url.rstrip("/")
    return settings.with_overrides(
        emulator=True,
        demo=True,
        public_url=base,
        zalo_app_id="demo-app",
        zalo_app_secret="demo-app-secret",
        zalo_oa_secret_key="demo-oa-secret",
        zalo_oa_id="demo-oa",
        zalo_access_token="demo-access-0",
        zalo_refresh_token="demo-refresh-0",
        zalo_openapi_url=f"{base}/_emulator/openapi",
        zalo_oauth_url=f"{base}/_emulator/oauth",
        zalo_zns_url=f"{base}/_emulator/business",
        shop_name=settings.shop_name if settings.shop_name != Settings().shop_name else "Cà phê Demo",
    )


def seed_demo(session: Session, now: datetime) -> bool:
    """Fill an empty database with a small café's program. Returns False if it already has tiers."""
    if session.scalar(select(Tier.id).limit(1)) is not None:
        return False
    rules = ProgramRules(promotions=(Promotion("Thứ Bảy nhân đôi điểm", 200, weekdays=(5,)),))
    save_rules(session, rules, updated_by="demo")
    session.add_all(
        [
            Tier(name="Thành viên", threshold=0, benefits="Tích 1 điểm cho mỗi 10.000đ"),
            Tier(name="Bạc", threshold=300, benefits="Quà sinh nhật: 1 ly cà phê"),
            Tier(name="Vàng", threshold=1000, benefits="Tích điểm x1,5", earn_multiplier_pct=150),
            Tier(
                name="Kim cương",
                threshold=3000,
                benefits="Tích điểm x2, đổi quà ít hơn 5% điểm",
                earn_multiplier_pct=200,
                reward_discount_pct=5,
            ),
            Reward(name="Cà phê sữa đá", description="1 ly size M", points_cost=50, validity_days=30),
            Reward(name="Bánh croissant", points_cost=40, validity_days=14, stock=30),
            Reward(name="Trà đào cam sả", points_cost=60, validity_days=30),
            Reward(name="Voucher 100.000đ", points_cost=500, validity_days=60, per_member_limit=1),
            Store(code="Q1", name="Cà phê Demo Quận 1", kind="retail", earn_points=10, earn_unit_amount=100_000),
            Store(code="OUTLET", name="Cà phê Demo Outlet", kind="outlet", earn_points=5, earn_unit_amount=100_000),
        ]
    )
    session.flush()
    stores = {s.code: s.id for s in session.scalars(select(Store))}
    for username, role, name, store in DEMO_LOGINS:
        if session.scalar(select(Staff.id).where(Staff.username == username)) is None:
            create_staff(
                session,
                username=username,
                password=DEMO_PASSWORD,
                role=role,
                name=name,
                store_id=stores[store] if store else None,
            )
    coffee = session.scalar(select(Reward).where(Reward.name == "Cà phê sữa đá"))
    if coffee is not None:  # birthday offers come with a coffee, and five bills on the stamp card earn one
        rules = replace(rules, automations=replace(rules.automations, birthday_reward_id=coffee.id))
        save_rules(session, rules, updated_by="demo")
        session.add(
            StampCard(
                name="Mua 5 ly tặng 1",
                description="Mỗi hóa đơn từ 30.000đ được 1 tem; đủ 5 tem tặng 1 ly cà phê sữa đá.",
                stamps_needed=5,
                reward_id=coffee.id,
                min_bill_amount=30_000,
                valid_days=180,
                created_at=now - timedelta(days=120),
            )
        )
        session.flush()
    _seed_templates(session, now)
    _seed_members(session, rules, now)
    _seed_results(session, rules, now)
    return True


def _seed_templates(session: Session, now: datetime) -> None:
    """The emulator's approved birthday template, registered and mapped as an owner would in "Mẫu tin Zalo":
    members outside the 7-day window, and imported ones who never chatted (by phone), get their offer."""
    from emulator.state import DEMO_TEMPLATES

    birthday = DEMO_TEMPLATES[0]
    session.add(
        ZaloTemplate(
            purpose="birthday",
            template_id=birthday.template_id,
            name=birthday.name,
            status=birthday.status,
            tag=birthday.tag,
            params=birthday.params,
            mapping={"customer_name": "ten", "gift_name": "qua", "voucher_code": "ma", "expiry_date": "han"},
            price_phone=birthday.price,
            fetched_at=now,
            updated_at=now,
        )
    )


def _seed_members(session: Session, rules: ProgramRules, now: datetime) -> None:
    """A few members the shop 'imported', with history (a customer with the same phone gets linked)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    coffee = session.scalar(select(Reward).where(Reward.name == "Cà phê sữa đá"))
    people = [
        ("Lê Thị Mai", "84903333333", [180_000, 95_000, 420_000, 1_250_000]),
        ("Phạm Quốc Bảo", "84904444444", [65_000, 130_000]),
        ("Nguyễn Thu Hà", "84987654321", [240_000, 310_000, 150_000]),
    ]
    for index, (name, phone, bills) in enumerate(people):
        member = create_member(session, now=now - timedelta(days=120), name=name, phone=phone, source="import")
        for n, amount in enumerate(bills):
            when = now - timedelta(days=90 - n * 20)
            earning.earn(
                session,
                member.id,
                amount,
                key=f"demo:{index}:{n}",
                rules=rules,
                tz=tz,
                now=when,
                bill_ref=f"HD{1000 + index * 10 + n}",
            )
        if name == "Nguyễn Thu Hà":  # she agreed to offers at the till: birthday offers reach her by phone
            record_consent(
                session, member, granted=True, channel="counter", actor="demo", now=now - timedelta(days=120)
            )
        if index == 0 and coffee is not None:
            rewards.redeem(session, member.id, coffee.id, key=f"demo:redeem:{index}", now=now - timedelta(days=10))


def _seed_results(session: Session, rules: ProgramRules, now: datetime) -> None:
    """A year of history so the results page (Hiệu quả) shows something real: customers joining month after
    month, coming back or not, walk-in bills, a VIP plan with a sale, a cause with a donation."""
    from zoneinfo import ZoneInfo

    from loyalty import charity, vip
    from loyalty.bills import record_walk_in

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    for n in range(36):
        joined = now - timedelta(days=10 * n + 5)
        member = create_member(session, now=joined, name=f"Khách mẫu {n + 1}", source="counter")
        for visit in range(n % 5):  # 0 to 4 visits, 12 days apart
            when = joined + timedelta(days=12 * visit)
            if when < now:
                amount = 45_000 + 15_000 * ((n + visit) % 4)
                earning.earn(session, member.id, amount, key=f"demo:r:{n}:{visit}", rules=rules, tz=tz, now=when)
    for n in range(40):
        amount = 35_000 + 5_000 * (n % 7)
        record_walk_in(session, amount, key=f"demo:walk-in:{n}", now=now - timedelta(days=2 * n + 1), store_id=None)
    gold = session.scalar(select(Tier).where(Tier.name == "Vàng"))
    mai = session.scalar(select(Member).where(Member.phone == "84903333333"))
    if gold is not None and mai is not None:
        plan = VipPlan(
            name="VIP Vàng 6 tháng", price=299_000, duration_days=180, tier_id=gold.id, benefits="Tích điểm x1,5"
        )
        cause = Cause(
            name="Áo ấm cho em vùng cao",
            description="Mỗi 1.000 điểm = 1 áo ấm. Quán góp thêm bằng số điểm khách tặng, tối đa 2.000 điểm.",
            goal_points=5_000,
            match_pct=100,
            match_cap_points=2_000,
        )
        session.add_all([plan, cause])
        session.flush()
        vip.sell(session, mai.id, plan.id, key="demo:vip", now=now - timedelta(days=20), by="demo")
        charity.donate(session, mai.id, cause.id, 30, key="demo:donate", now=now, today=now.astimezone(tz).date())
