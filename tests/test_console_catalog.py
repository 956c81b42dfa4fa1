"""Tiers and rewards in the console: validated, saved together, logged; the chat sees the change."""

import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.members import create_member
from models import AuditLog, Reward, Tier
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Console


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def tier_form(console: Console) -> dict[str, str]:
    html = console.get("/admin/tiers").get_data(as_text=True)
    return dict(re.findall(r'<input type="text" name="([a-z_]+_(?:\d+|new))" aria-label="[^"]*" value="([^"]*)"', html))


def test_edit_add_and_swap_tiers(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    form = tier_form(mkt)
    silver, gold = shop["tiers"]["Bạc"].id, shop["tiers"]["Vàng"].id
    old_silver, old_gold = form[f"threshold_{silver}"], form[f"threshold_{gold}"]
    form |= {f"threshold_{silver}": old_gold, f"threshold_{gold}": old_silver}  # swapped: unique before and after
    form |= {f"earn_multiplier_pct_{gold}": "150", f"benefits_{gold}": "Tích x1,5"}
    form |= {"name_new": "Bạch kim", "threshold_new": "20000", "earn_multiplier_pct_new": "200"}
    saved = mkt.post("/admin/tiers", form, page="/admin/tiers", follow_redirects=True)
    assert "Đã lưu các hạng" in text_of(saved)
    session.expire_all()
    assert session.get(Tier, silver).threshold == int(old_gold) and session.get(Tier, gold).threshold == int(old_silver)
    platinum = session.scalar(select(Tier).where(Tier.name == "Bạch kim"))
    assert platinum.threshold == 20000 and platinum.earn_multiplier_pct == 200
    log = session.scalar(select(AuditLog).where(AuditLog.action == "tier_change"))
    assert log.details["Bạc"]["threshold"] == [int(old_silver), int(old_gold)]


def test_saving_the_tiers_unchanged_records_nothing(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    saved = mkt.post("/admin/tiers", tier_form(mkt), page="/admin/tiers", follow_redirects=True)
    assert "Các hạng không có gì thay đổi." in text_of(saved)
    assert session.scalar(select(AuditLog).where(AuditLog.action == "tier_change")) is None


def test_tier_ladder_is_validated(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    base, silver = shop["tiers"]["Thành viên"].id, shop["tiers"]["Bạc"].id
    bad = tier_form(mkt) | {f"threshold_{base}": "10", f"name_{silver}": "VÀNG", f"earn_multiplier_pct_{silver}": "50"}
    html = text_of(mkt.post("/admin/tiers", bad, page="/admin/tiers"))
    assert "Hệ số tích (%): từ 100 đến 1.000." in html
    bad[f"earn_multiplier_pct_{silver}"] = "100"
    html = text_of(mkt.post("/admin/tiers", bad, page="/admin/tiers"))
    assert "Hạng thấp nhất phải có mức 0 điểm" in html and "Tên hạng bị trùng với hạng khác." in html
    create_member(session, now=datetime.now(UTC), name="Lan")  # in the lowest tier
    session.commit()
    in_use = tier_form(mkt) | {f"delete_{base}": "on"}
    assert "Không xóa được hạng Thành viên" in text_of(mkt.post("/admin/tiers", in_use, page="/admin/tiers"))
    assert session.scalar(select(Tier.threshold).where(Tier.id == base)) == 0


def test_delete_an_unused_tier(app: Flask, session: Session, shop) -> None:
    diamond = shop["tiers"]["Kim cương"].id
    for reward in session.scalars(select(Reward).where(Reward.min_tier_id == diamond)):
        reward.min_tier_id = None
    session.commit()
    mkt = login(app, "mkt")
    mkt.post("/admin/tiers", tier_form(mkt) | {f"delete_{diamond}": "on"}, page="/admin/tiers")
    session.expire_all()
    assert session.get(Tier, diamond) is None


def test_add_and_edit_a_reward(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    bad = mkt.post(
        "/admin/rewards/new",
        dict(name="", points_cost="0", validity_days="30", active_from="2026-12-10", active_until="2026-12-01"),
        page="/admin/rewards/new",
    )
    html = text_of(bad)
    assert "Tên quà cần 1-200 ký tự." in html and "Số điểm đổi: từ 1 đến 10.000.000." in html
    assert "Ngày kết thúc phải sau ngày bắt đầu." in html
    no_tier = text_of(
        mkt.post(
            "/admin/rewards/new",
            dict(name="Trà", points_cost="10", validity_days="30", min_tier_id="999999"),
            page="/admin/rewards/new",
        )
    )
    assert "Hạng tối thiểu không tồn tại." in no_tier
    form = {
        "name": "Bánh mì",
        "points_cost": "30",
        "validity_days": "14",
        "stock": "100",
        "active_until": "2026-12-31",
        "min_tier_id": str(shop["tiers"]["Bạc"].id),
        "is_active": "on",
    }
    listing = text_of(mkt.post("/admin/rewards/new", form, page="/admin/rewards/new", follow_redirects=True))
    assert "Đã lưu quà “Bánh mì”." in listing and "đến hết 31/12/2026" in listing
    reward = session.scalar(select(Reward).where(Reward.name == "Bánh mì"))
    assert reward.active_until == datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # midnight in Hà Nội, exclusive
    page = f"/admin/rewards/{reward.id}"
    assert 'value="2026-12-31"' in mkt.get(page).get_data(as_text=True)  # shown as the day it was typed
    mkt.post(page, {**form, "points_cost": "25", "is_active": ""}, page=page)
    session.expire_all()
    assert session.get(Reward, reward.id).points_cost == 25 and not session.get(Reward, reward.id).is_active
    changes = [a.details for a in session.scalars(select(AuditLog).where(AuditLog.action == "reward_change"))]
    assert changes[-1]["points_cost"] == [30, 25] and changes[-1]["is_active"] == [True, False]
    assert login(app, "thu-ngan").get("/admin/rewards").status_code == 403


def test_promotions_added_validated_and_applied(app: Flask, session: Session, services, shop) -> None:
    from loyalty.program import load_rules

    mkt = login(app, "mkt")
    bad = text_of(
        mkt.post("/admin/promotions", {"name_new": "Không ngày", "multiplier_pct_new": "300"}, page="/admin/promotions")
    )
    assert "Chọn ngày áp dụng" in bad
    form = {"name_new": "Thứ Hai x2", "multiplier_pct_new": "200", "weekdays_new": "0"}
    saved = mkt.post("/admin/promotions", form, page="/admin/promotions", follow_redirects=True)
    assert "Đã lưu 1 khuyến mãi tích điểm." in text_of(saved)
    session.expire_all()
    (promo,) = load_rules(session).promotions
    assert promo.name == "Thứ Hai x2" and promo.weekdays == (0,) and promo.multiplier_pct == 200
    assert promo.applies_on(datetime(2026, 11, 23).date()) and not promo.applies_on(datetime(2026, 11, 24).date())
    mkt.post(
        "/admin/promotions",
        {"name_0": "Thứ Hai x2", "multiplier_pct_0": "200", "delete_0": "on"},
        page="/admin/promotions",
    )
    session.rollback()  # a new transaction: a transaction keeps the rules it read first (models.config)
    assert load_rules(session).promotions == ()
