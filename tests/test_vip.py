"""Paid membership (VIP, issue 18) through its real paths: sold at the counter and through the POS API, the tier
held for the period whatever the points, renewals that extend it, the reminder before it ends, and the fall
back to the tier the points earn. Double clicks and retries sell once. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.staff import create_api_key, create_staff
from jobs import automations
from loyalty import vip
from loyalty.members import create_member
from models import AuditLog, Member, VipMembership, VipPlan
from tests.console_support import login, text_of
from tests.helpers import ZaloFake, run_jobs, seed_shop

UID = "8958041078911298472"
DAY = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    create_staff(
        session, username="thu-ngan", password="mat-khau-123", role="cashier", store_id=shop["stores"]["Q1"].id
    )
    session.commit()
    return shop


@pytest.fixture
def gold(session: Session, shop: dict) -> VipPlan:
    plan = VipPlan(
        name="VIP Vàng 6 tháng",
        price=299_000,
        duration_days=180,
        tier_id=shop["tiers"]["Vàng"].id,
        benefits="x1,5 điểm",
    )
    session.add(plan)
    session.commit()
    return plan


@pytest.fixture
def lan(session: Session, shop: dict) -> Member:
    member = create_member(session, now=DAY, name="Lan", phone="84912345678", zalo_user_id=UID)
    session.commit()
    return member


def tier_of(session: Session, member: Member) -> str:
    session.expire_all()
    fresh = session.get(Member, member.id)
    assert fresh is not None and fresh.tier_id is not None
    from models import Tier

    tier = session.get(Tier, fresh.tier_id)
    assert tier is not None
    return tier.name


def test_the_cashier_sells_a_plan_once_and_the_member_holds_its_tier(
    app: Flask, zalo: ZaloFake, session: Session, gold: VipPlan, lan: Member
) -> None:
    zalo.accept_messages()
    cashier = login(app, "thu-ngan")
    page = text_of(cashier.get(f"/counter/members/{lan.id}"))
    assert "Bán gói VIP" in page and "VIP Vàng 6 tháng — 299.000đ, 180 ngày" in page
    form = {"plan_id": str(gold.id), "vip_bill_ref": "HD55", "op": "op-1"}
    sold = cashier.post(f"/counter/members/{lan.id}/vip", form, follow_redirects=True)
    assert "Đã bán VIP Vàng 6 tháng (299.000đ): hạng Vàng đến" in text_of(sold)
    cashier.post(f"/counter/members/{lan.id}/vip", form, follow_redirects=True)  # a double click
    assert session.scalar(select(func.count()).select_from(VipMembership)) == 1
    assert tier_of(session, lan) == "Vàng"
    membership = session.scalars(select(VipMembership)).one()
    assert (membership.price, membership.bill_ref, membership.ends_at - membership.starts_at) == (
        299_000,
        "HD55",
        timedelta(days=180),
    )
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "sell_vip")) == 1
    assert "VIP đến" in text_of(cashier.get(f"/counter/members/{lan.id}"))
    run_jobs(app)
    texts = [m["message"]["text"] for m in zalo.sent_messages()]
    assert texts[0].startswith("🎖️ Chào mừng bạn đến với VIP Vàng 6 tháng! Bạn giữ hạng Vàng đến ngày ")
    assert texts[0].endswith("Quyền lợi: x1,5 điểm")
    from tests.helpers import Chat

    balance = Chat(app, zalo).say("điểm")[0]["text"]
    assert f"Hạng: Vàng (VIP đến {membership.ends_at.astimezone(TZ):%d/%m/%Y})" in balance
    missing = cashier.post(f"/counter/members/{lan.id}/vip", {"op": "op-2"}, follow_redirects=True)
    assert "Chọn gói VIP khách mua." in text_of(missing)


def test_a_renewal_extends_from_the_end_and_a_higher_tier_is_kept(
    session: Session, shop: dict, gold: VipPlan, lan: Member
) -> None:
    first = vip.sell(session, lan.id, gold.id, key="a", now=DAY, by="staff:1")
    renewal = vip.sell(session, lan.id, gold.id, key="b", now=DAY + timedelta(days=100), by="staff:1")
    session.commit()
    assert renewal.membership.starts_at == first.membership.ends_at
    assert renewal.membership.ends_at == DAY + timedelta(days=360)
    session.expire_all()
    assert session.get(Member, lan.id).tier_held_until == DAY + timedelta(days=360)  # type: ignore[union-attr]
    assert vip.sell(session, lan.id, gold.id, key="a", now=DAY, by="x").replayed  # a retry sells nothing

    diamond = create_member(session, now=DAY, name="Kim", phone="84900000001")
    diamond.tier_id = shop["tiers"]["Kim cương"].id
    session.commit()
    sale = vip.sell(session, diamond.id, gold.id, key="c", now=DAY, by="staff:1")
    session.commit()
    assert sale.tier.name == "Kim cương" and tier_of(session, diamond) == "Kim cương"


def test_the_member_is_reminded_once_before_the_end_and_falls_back_after(
    app: Flask, zalo: ZaloFake, session: Session, shop: dict, gold: VipPlan, lan: Member
) -> None:
    from models import ZaloUser

    zalo.accept_messages()
    vip.sell(session, lan.id, gold.id, key="a", now=DAY, by="staff:1")
    session.commit()
    end = DAY + timedelta(days=180)
    week_before = end - timedelta(days=6)
    session.add(ZaloUser(user_id=UID, is_follower=True, last_interaction_at=week_before - timedelta(days=1)))
    session.commit()
    with time_machine.travel(week_before, tick=False), app.app_context():
        assert automations.remind_vip_renewals(end - timedelta(days=30)) == 0  # too early
        assert automations.remind_vip_renewals(week_before) == 1
        assert automations.remind_vip_renewals(week_before) == 0  # once per period
        run_jobs(app)
    (reminder,) = [m["message"]["text"] for m in zalo.sent_messages()]
    assert reminder.startswith("Lan ơi, gói VIP Vàng 6 tháng của bạn hết hạn ngày ")
    assert reminder.endswith("Gia hạn tại quầy để giữ hạng Vàng nhé!")

    with time_machine.travel(end + timedelta(hours=1), tick=False), app.app_context():
        automations.review_tiers(end + timedelta(hours=1))
    assert tier_of(session, lan) == "Thành viên"  # no points: back to the first tier


def test_a_renewed_period_is_not_reminded(session: Session, gold: VipPlan, lan: Member) -> None:
    vip.sell(session, lan.id, gold.id, key="a", now=DAY, by="staff:1")
    vip.sell(session, lan.id, gold.id, key="b", now=DAY + timedelta(days=170), by="staff:1")
    session.commit()
    assert vip.ending_soon(session, DAY + timedelta(days=175), 7) == []


def test_the_pos_api_lists_plans_and_sells_once(app: Flask, session: Session, shop: dict, gold: VipPlan, lan) -> None:
    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None).secret
    session.commit()
    client = app.test_client()
    plans = client.get("/api/v1/vip-plans", headers={"X-Api-Key": key})
    assert plans.json["plans"] == [
        {"id": gold.id, "name": "VIP Vàng 6 tháng", "price": 299_000, "duration_days": 180, "tier": "Vàng"}
    ]

    def sell(idem: str, **body: object):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/vip-memberships", json=body, headers={"X-Api-Key": key, "Idempotency-Key": idem})

    first = sell("s-1", phone="0912345678", plan_id=gold.id, bill_ref="HD1")
    assert first.status_code == 201 and first.json["tier"] == "Vàng" and first.json["price"] == 299_000
    again = sell("s-1", phone="0912345678", plan_id=gold.id, bill_ref="HD1")
    assert again.status_code == 200 and again.json["membership_id"] == first.json["membership_id"]
    other = VipPlan(name="Bạc 1 tháng", price=49_000, duration_days=30, tier_id=shop["tiers"]["Bạc"].id)
    session.add(other)
    session.commit()
    assert sell("s-1", phone="0912345678", plan_id=other.id).status_code == 409
    other.is_active = False
    session.commit()
    refused = sell("s-2", phone="0912345678", plan_id=other.id)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "vip_unavailable"
    assert session.scalar(select(func.count()).select_from(VipMembership)) == 1


def test_the_console_sells_plans_and_shows_who_holds_one(
    app: Flask, session: Session, shop: dict, gold: VipPlan, lan
) -> None:
    owner = login(app, "chu")
    new = "/admin/vip/plans/new"
    bad = owner.post(new, {"name": "", "price": "abc", "duration_days": "0"}, page=new)
    assert "Tên gói cần 1-100 ký tự." in text_of(bad) and "Chọn hạng khách được giữ khi mua gói." in text_of(bad)
    form = {"name": "Bạc 1 tháng", "price": "49.000", "duration_days": "30", "tier_id": str(shop["tiers"]["Bạc"].id)}
    saved = owner.post(new, form | {"is_active": "on"}, page=new, follow_redirects=True)
    assert "Đã lưu gói “Bạc 1 tháng”." in text_of(saved)
    assert session.scalars(select(VipPlan).where(VipPlan.name == "Bạc 1 tháng")).one().price == 49_000
    vip.sell(session, lan.id, gold.id, key="a", now=datetime.now(UTC), by="staff:1")
    session.commit()
    listing = text_of(owner.get("/admin/vip/"))
    assert "<td>1</td><td>1</td> <td>299.000đ</td>" in listing and 'id="vip-holders"' in listing
    assert login(app, "thu-ngan").get("/admin/vip/").status_code in (302, 403)
