"""Owner-only pages: staff, API keys (shown once, usable by the POS API, revocable) and the audit log."""

import re

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ApiKey, AuditLog, Staff
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Console


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def test_only_the_owner_sees_team_pages(app: Flask, shop) -> None:
    for path in ("/admin/staff", "/admin/api-keys", "/admin/audit"):
        assert login(app, "mkt").get(path).status_code == 403
        assert login(app, "thu-ngan").get(path).status_code == 403
        assert login(app, "chu").get(path).status_code == 200


def test_add_staff_with_clear_errors(app: Flask, session: Session, shop) -> None:
    owner = login(app, "chu")
    short = owner.post("/admin/staff", {"username": "lan", "password": "123", "role": "cashier"}, page="/admin/staff")
    assert "Mật khẩu cần ít nhất 8 ký tự." in text_of(short)
    taken = owner.post(
        "/admin/staff", {"username": "MKT", "password": "mat-khau-456", "role": "cashier"}, page="/admin/staff"
    )
    assert "Tên đăng nhập mkt đã có." in text_of(taken)
    store = str(shop["stores"]["Q1"].id)
    added = owner.post(
        "/admin/staff",
        {"username": "lan", "name": "Chị Lan", "password": "mat-khau-456", "role": "cashier", "store_id": store},
        page="/admin/staff",
        follow_redirects=True,
    )
    assert "Đã thêm Chị Lan (Thu ngân)." in text_of(added)
    assert login(app, "lan", "mat-khau-456").get("/counter/").status_code == 200


def test_lock_staff_ends_their_access_and_not_your_own(app: Flask, session: Session, shop) -> None:
    owner = login(app, "chu")
    cashier = login(app, "thu-ngan")
    target = session.scalar(select(Staff).where(Staff.username == "thu-ngan"))
    owner.post(f"/admin/staff/{target.id}", {"active": "0"}, page="/admin/staff")
    assert cashier.get("/counter/").status_code == 302  # logged out at once
    me = session.scalar(select(Staff).where(Staff.username == "chu"))
    refused = owner.post(f"/admin/staff/{me.id}", {"active": "0"}, page="/admin/staff", follow_redirects=True)
    assert "Không thể tự khóa tài khoản của chính mình." in text_of(refused)
    owner.post(f"/admin/staff/{target.id}", {"active": "1", "password": "mat-khau-moi-1"}, page="/admin/staff")
    assert Console(app).login("thu-ngan", "mat-khau-123").status_code != 302  # the old password no longer works
    fresh = login(app, "thu-ngan", "mat-khau-moi-1")
    assert fresh.get("/counter/").status_code == 200


def test_api_key_shown_once_then_works_then_revoked(app: Flask, session: Session, shop) -> None:
    owner = login(app, "chu")
    missing = owner.post("/admin/api-keys", {"name": "POS 1"}, page="/admin/api-keys")
    assert missing.status_code == 400 and "Chọn cửa hàng cho khóa API." in text_of(missing)
    created = owner.post(
        "/admin/api-keys", {"name": "POS 1", "store_id": str(shop["stores"]["Q1"].id)}, page="/admin/api-keys"
    )
    assert created.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="secret">(td_[\w-]+)<', created.get_data(as_text=True))[1]
    assert secret not in owner.get("/admin/api-keys").get_data(as_text=True)  # once
    pos = app.test_client()
    bearer = {"X-Api-Key": secret}
    assert pos.get("/api/v1/members/lookup?phone=0912345678", headers=bearer).status_code == 404  # known key, no member
    key = session.scalar(select(ApiKey))
    owner.post(f"/admin/api-keys/{key.id}/revoke", page="/admin/api-keys")
    assert pos.get("/api/v1/members/lookup?phone=0912345678", headers=bearer).status_code == 401


def test_audit_log_lists_and_filters(app: Flask, session: Session, shop) -> None:
    owner = login(app, "chu")
    owner.post("/admin/api-keys", {"name": "POS 1", "store_id": str(shop["stores"]["Q1"].id)}, page="/admin/api-keys")
    owner.post(
        "/admin/staff",
        {"username": "lan", "password": "mat-khau-456", "role": "cashier"},
        page="/admin/staff",
    )
    assert {a for a in session.scalars(select(AuditLog.action))} == {"api_key_create", "staff_create"}
    everything = text_of(owner.get("/admin/audit"))
    assert "Tạo khóa API" in everything and "Thêm nhân viên" in everything and "(2)" in everything
    only_staff = text_of(owner.get("/admin/audit?action=staff_create"))
    assert "(1)" in only_staff and "Tài khoản: lan" in only_staff
