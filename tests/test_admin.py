"""The owner/marketer console: dashboard figures, member search, member page, adjustment, block."""

import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import earning, ledger
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import AuditLog, Member
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Console

TZ_RULES = ProgramRules()


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def test_dashboard_figures(app: Flask, session: Session, services, shop) -> None:
    now = datetime.now(UTC)
    lan = create_member(session, now=now, name="Lan", phone="84912345678")
    create_member(session, now=now, name="Minh")
    session.commit()
    earning.earn(session, lan.id, 2_500_000, key="b1", rules=TZ_RULES, tz=services.settings.tz, now=now)
    session.commit()
    page = login(app, "mkt").get("/admin/")
    assert page.status_code == 200
    html = text_of(page)
    assert 'id="members-total">2<' in html and "+2 trong 7 ngày" in html
    assert "Tích: <strong>250</strong>" in html
    assert 'id="liability">250.000đ<' in html  # 250 points x 1.000đ
    assert "<svg" in html and "Thành viên theo hạng" in html


def test_roles(app: Flask, shop) -> None:
    assert login(app, "thu-ngan").get("/admin/").status_code == 403
    assert login(app, "chu").get("/admin/").status_code == 200
    assert app.test_client().get("/admin/members").status_code == 302


def test_member_search_filters_and_pages(app: Flask, session: Session, shop) -> None:
    now = datetime.now(UTC)
    for i in range(55):
        create_member(session, now=now, name=f"Khách {i:02d}", phone=f"8490000{i:04d}")
    gold = create_member(session, now=now, name="Vàng Anh", phone="84911111111", birthday=datetime(1990, 7, 1).date())
    gold.tier_id = shop["tiers"]["Vàng"].id
    session.commit()
    console = login(app, "mkt")
    first = text_of(console.get("/admin/members"))
    assert 'Thành viên <span class="muted">(56)</span>' in first and "Trang 1/2" in first
    assert "Khách 00" not in first and "Khách 00" in text_of(console.get("/admin/members?page=2"))
    assert "Vàng Anh" in text_of(console.get("/admin/members?q=0911111111"))
    assert "Vàng Anh" in text_of(console.get("/admin/members?q=vàng"))
    by_tier = text_of(console.get(f"/admin/members?tier={shop['tiers']['Vàng'].id}"))
    assert "(1)" in by_tier and "Vàng Anh" in by_tier
    assert "(1)" in text_of(console.get("/admin/members?birthday_month=7"))
    assert "Không có thành viên phù hợp." in text_of(console.get("/admin/members?q=zzz"))


def test_owner_adjusts_with_a_reason(app: Flask, session: Session, shop) -> None:
    member = create_member(session, now=datetime.now(UTC), name="Lan")
    session.commit()
    owner = login(app, "chu")
    page = owner.get(f"/admin/members/{member.id}").get_data(as_text=True)
    op = re.search(r'name="op" value="([0-9a-f]+)"', page)[1]
    form = {"points": "50", "reason": "Bù điểm hóa đơn quên quét", "op": op}
    owner.post(f"/admin/members/{member.id}/adjust", form, page=f"/admin/members/{member.id}")
    done = owner.post(
        f"/admin/members/{member.id}/adjust", form, page=f"/admin/members/{member.id}", follow_redirects=True
    )  # a double click
    assert 'id="balance">50 điểm<' in text_of(done)
    assert "+50 điểm — Bù điểm hóa đơn quên quét" in text_of(done)
    no_reason = owner.post(
        f"/admin/members/{member.id}/adjust",
        {"points": "5", "reason": " ", "op": "x2"},
        page=f"/admin/members/{member.id}",
        follow_redirects=True,
    )
    assert "Cần nhập số điểm khác 0 và lý do điều chỉnh." in text_of(no_reason)
    too_much = owner.post(
        f"/admin/members/{member.id}/adjust",
        {"points": "-80", "reason": "sai", "op": "x3"},
        page=f"/admin/members/{member.id}",
        follow_redirects=True,
    )
    assert "Không trừ được: thành viên chỉ có 50 điểm." in text_of(too_much)
    session.expire_all()
    assert session.get(Member, member.id).points_balance == 50
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "adjust")).one()
    assert audit.details == {"points": 50, "reason": "Bù điểm hóa đơn quên quét"}
    entries, lots = ledger.ledger_totals(session, member.id)
    assert entries == lots == 50


def test_marketer_cannot_adjust_or_block(app: Flask, session: Session, shop) -> None:
    member = create_member(session, now=datetime.now(UTC), name="Lan")
    session.commit()
    marketer = login(app, "mkt")
    page = marketer.get(f"/admin/members/{member.id}").get_data(as_text=True)
    assert "Điều chỉnh điểm" not in page
    response = marketer.post(
        f"/admin/members/{member.id}/adjust", {"points": "5", "reason": "x", "op": "o"}, page="/admin/members"
    )
    assert response.status_code == 403
    assert (
        marketer.post(f"/admin/members/{member.id}/block", {"blocked": "1"}, page="/admin/members").status_code == 403
    )


def test_block_and_unblock(app: Flask, session: Session, shop) -> None:
    member = create_member(session, now=datetime.now(UTC), name="Lan")
    session.commit()
    owner = login(app, "chu")
    blocked = owner.post(
        f"/admin/members/{member.id}/block", {"blocked": "1"}, page=f"/admin/members/{member.id}", follow_redirects=True
    )
    assert "Đã khóa thành viên." in text_of(blocked)
    session.expire_all()
    assert session.get(Member, member.id).status == "blocked"
    owner.post(f"/admin/members/{member.id}/block", {"blocked": "0"}, page=f"/admin/members/{member.id}")
    session.expire_all()
    assert session.get(Member, member.id).status == "active"
    assert [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))] == ["block", "unblock"]


def program_form(console: Console) -> dict:
    html = console.get("/admin/program").get_data(as_text=True)
    form = dict(re.findall(r'<input id="([a-z_]+)" name="[a-z_]+" type="text" value="([^"]*)">', html))
    form |= {
        name: value.strip()
        for name, value in re.findall(
            r'<textarea id="([a-z_]+)" name="[a-z_]+" rows="2" style="width:100%">([^<]*)</textarea>', html
        )
    }
    form |= {
        "referral_bonus_kind": "fixed",
        "birthday_on": "day",
        "birthday_reward_id": "",
        "birthday_enabled": "on",
        "tier_up_enabled": "on",
        "expiry_enabled": "on",
        "tier_review_enabled": "on",
    }
    return {k: v.replace("&#34;", '"').replace("&#39;", "'") for k, v in form.items()}


def test_program_settings_saved_validated_and_logged(app: Flask, session: Session, services, shop) -> None:
    from loyalty.program import load_rules

    owner = login(app, "chu")
    form = program_form(owner)
    assert form["earn_points"] == "1" and form["earn_unit_amount"] == "10000" and form["expiry_months"] == "12"
    saved = owner.post(
        "/admin/program",
        form | {"earn_unit_amount": "20.000", "expiry_months": "", "tier_up_text": "Chúc mừng {ten} lên {hang}!"},
        page="/admin/program",
        follow_redirects=True,
    )
    assert "Đã lưu thiết lập chương trình (3 thay đổi)." in text_of(saved)
    session.expire_all()
    rules = load_rules(session)
    assert (rules.earn_rate.unit_amount, rules.expiry_months) == (20_000, None)
    assert rules.automations.tier_up_text == "Chúc mừng {ten} lên {hang}!"
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "program_change")).one()
    assert audit.details["earn_rate.unit_amount"] == [10_000, 20_000] and audit.details["expiry_months"] == [12, None]
    member = create_member(session, now=datetime.now(UTC), name="Lan")
    session.commit()
    result = earning.earn(
        session, member.id, 250_000, key="k", rules=rules, tz=services.settings.tz, now=datetime.now(UTC)
    )
    assert result.points == 12  # 1 point per 20.000đ now


def test_earn_rates_per_channel_are_set_in_the_program_page(app: Flask, session: Session, services, shop) -> None:
    from loyalty.program import Rate, load_rules

    owner = login(app, "chu")
    form = program_form(owner)
    assert form["rate_claim_points"] == "" and form["rate_pos_amount"] == ""
    owner.post("/admin/program", form | {"rate_claim_points": "2", "rate_claim_amount": "10000"}, page="/admin/program")
    session.expire_all()
    rules = load_rules(session)
    assert rules.channel_rates == {"claim": Rate(2, 10_000)} and rules.rate_for("claim") == Rate(2, 10_000)
    assert rules.rate_for("counter") == rules.earn_rate
    half = owner.post("/admin/program", program_form(owner) | {"rate_pos_points": "3"}, page="/admin/program")
    assert "Điền cả số điểm và số tiền" in text_of(half)
    owner.post(
        "/admin/program",
        program_form(owner) | {"rate_claim_points": "", "rate_claim_amount": ""},
        page="/admin/program",
    )
    session.rollback()  # a new transaction: a transaction keeps the rules it read first (models.config)
    assert load_rules(session).channel_rates == {}


def test_the_owner_adds_edits_and_closes_stores(app: Flask, session: Session, shop) -> None:
    from models import Store

    owner = login(app, "chu")
    added = owner.post(
        "/admin/stores/",
        {"code": "td", "name": "Thủ Đức", "kind": "retail", "earn_points": "2", "earn_unit_amount": "10000"},
        page="/admin/stores/",
        follow_redirects=True,
    )
    assert "Đã thêm cửa hàng Thủ Đức." in text_of(added)
    store = session.scalar(select(Store).where(Store.code == "TD"))
    assert store is not None and (store.earn_points, store.earn_unit_amount) == (2, 10_000)
    twice = owner.post("/admin/stores/", {"code": "TD", "name": "Khác"}, page="/admin/stores/", follow_redirects=True)
    assert "Đã có cửa hàng mã TD." in text_of(twice)
    bad = owner.post(
        "/admin/stores/", {"code": "X1", "name": "Y", "earn_points": "2"}, page="/admin/stores/", follow_redirects=True
    )
    assert "Mức tích riêng" in text_of(bad)
    owner.post(
        f"/admin/stores/{store.id}",
        {"name": "Thủ Đức 2", "kind": "outlet", "earn_points": "", "earn_unit_amount": ""},
        page="/admin/stores/",
    )
    session.expire_all()
    store = session.get(Store, store.id)
    assert (store.name, store.kind, store.earn_points, store.is_active) == ("Thủ Đức 2", "outlet", None, False)
    log = session.scalar(select(AuditLog).where(AuditLog.action == "store_update"))
    assert log is not None and log.details["is_active"] == [True, False] and log.details["code"] == "TD"
    assert "Đã đóng" in text_of(owner.get("/admin/stores/"))
    assert login(app, "mkt").get("/admin/stores/").status_code == 403


def test_program_settings_errors_are_shown_and_nothing_saved(app: Flask, session: Session, shop) -> None:
    from loyalty.program import load_rules

    owner = login(app, "chu")
    form = program_form(owner)
    page = owner.post(
        "/admin/program",
        form | {"earn_unit_amount": "abc", "daily_hour": "25", "tier_up_text": ""},
        page="/admin/program",
    )
    html = text_of(page)
    assert "Chưa lưu: kiểm tra các ô được đánh dấu." in html
    assert "Mỗi số tiền (đ): cần một số nguyên." in html and "Giờ gửi tin hằng ngày: từ 0 đến 23." in html
    assert "Nội dung tin nhắn cần 1-1.000 ký tự." in html
    session.expire_all()
    assert load_rules(session).earn_rate.unit_amount == 10_000
    assert login(app, "thu-ngan").get("/admin/program").status_code == 403


def test_activity_filter_counts_earns_and_chats(app: Flask, session: Session, services, shop) -> None:
    from datetime import timedelta

    from models import ZaloUser

    now = datetime.now(UTC)
    earned = create_member(session, now=now, name="Đã mua")
    create_member(session, now=now, name="Chat gần đây", zalo_user_id="u-chat")
    create_member(session, now=now, name="Không gì cả")
    create_member(session, now=now, name="Chat lâu rồi", zalo_user_id="u-old")
    session.add(
        ZaloUser(user_id="u-chat", is_follower=True, last_interaction_at=now - timedelta(days=2), created_at=now)
    )
    session.add(
        ZaloUser(user_id="u-old", is_follower=True, last_interaction_at=now - timedelta(days=90), created_at=now)
    )
    session.commit()
    earning.earn(session, earned.id, 100_000, key="b", rules=TZ_RULES, tz=services.settings.tz, now=now)
    session.commit()
    mkt = login(app, "mkt")
    active = text_of(mkt.get("/admin/members?activity=active"))
    assert "(2)" in active and "Đã mua" in active and "Chat gần đây" in active
    inactive = text_of(mkt.get("/admin/members?activity=inactive"))
    assert "(2)" in inactive and "Không gì cả" in inactive and "Chat lâu rồi" in inactive
    assert "2 hoạt động 30 ngày" in text_of(mkt.get("/admin/"))
