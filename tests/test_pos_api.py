"""The POS API: every endpoint and its errors, and the OpenAPI description kept in step with the routes."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.staff import create_api_key
from loyalty import ledger, rewards
from loyalty.cards import card_token
from loyalty.members import create_member, set_blocked
from models import ApiKey, Member, Store
from tests.helpers import ZaloFake, run_jobs, seed_shop


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    session.get(Store, shop["stores"]["Q1"].id).earn_points = None  # default rate: 1 point per 10.000đ
    session.commit()
    return shop


@pytest.fixture
def key(session: Session, shop) -> str:
    new = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="KiotViet", created_by_id=None)
    session.commit()
    return new.secret


@pytest.fixture
def member(session: Session, shop) -> Member:
    m = create_member(
        session, now=datetime.now(UTC), name="Lan", phone="84912345678", zalo_user_id="8958041078911298472"
    )
    session.commit()
    return m


def call(app: Flask, method: str, path: str, key: str | None, idem: str | None = None, **kw):
    headers = {}
    if key:
        headers["X-Api-Key"] = key
    if idem:
        headers["Idempotency-Key"] = idem
    return app.test_client().open(f"/api/v1{path}", method=method, headers=headers, **kw)


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def test_api_key_is_required_and_stored_hashed(app: Flask, session: Session, key: str) -> None:
    assert error_code(call(app, "GET", "/members/lookup?phone=0912345678", None)) == "unauthorized"
    assert call(app, "GET", "/members/lookup?phone=0912345678", "td_wrong").status_code == 401
    stored = session.scalars(select(ApiKey)).one()
    assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64


def test_revoked_key_is_refused(app: Flask, session: Session, key: str, member: Member) -> None:
    session.scalars(select(ApiKey)).one().revoked_at = datetime.now(UTC)
    session.commit()
    assert call(app, "GET", "/members/lookup?phone=0912345678", key).status_code == 401


def test_lookup_by_card_and_phone(app: Flask, key: str, member: Member, services) -> None:
    by_phone = call(app, "GET", "/members/lookup?phone=0912 345 678", key)
    assert by_phone.status_code == 200 and by_phone.get_json()["member"]["id"] == member.id
    token = card_token(member, services.settings.secret_key)
    by_card = call(app, "GET", f"/members/lookup?card={token}", key).get_json()["member"]
    assert by_card == {
        "id": member.id,
        "code": member.code,
        "name": "Lan",
        "phone": "84912345678",
        "tier": "Thành viên",
        "points_balance": 0,
        "status": "active",
    }
    assert error_code(call(app, "GET", "/members/lookup?phone=0999999999", key)) == "member_not_found"
    assert error_code(call(app, "GET", "/members/lookup?card=TD-1-1-AAAAAAAAAAAA", key)) == "member_not_found"
    assert error_code(call(app, "GET", "/members/lookup?phone=abc", key)) == "invalid_phone"
    assert error_code(call(app, "GET", "/members/lookup", key)) == "validation_error"


def test_earn_is_idempotent_and_notifies(app: Flask, zalo: ZaloFake, key: str, member: Member) -> None:
    zalo.accept_messages()
    body = {"phone": "0912345678", "amount": 250_000, "bill_ref": "HD1"}
    first = call(app, "POST", "/earns", key, "bill-HD1", json=body)
    assert first.status_code == 201
    data = first.get_json()
    assert (data["points"], data["balance"], data["replayed"]) == (25, 25, False)
    again = call(app, "POST", "/earns", key, "bill-HD1", json=body)
    assert (
        again.status_code == 200 and again.get_json()["replayed"] and again.get_json()["entry_id"] == data["entry_id"]
    )
    conflict = call(app, "POST", "/earns", key, "bill-HD1", json=body | {"amount": 990_000})
    assert conflict.status_code == 409 and error_code(conflict) == "idempotency_conflict"
    run_jobs(app)
    assert [m["message"]["text"] for m in zalo.sent_messages()] == [
        "+25 điểm từ hóa đơn 250.000đ (HD1) — số dư 25 điểm."
    ]


@pytest.mark.parametrize(
    ("body", "idem", "status", "code"),
    [
        ({"member_id": 0, "amount": 1000}, "k", 404, "member_not_found"),
        ({"phone": "0912345678", "amount": 0}, "k", 422, "invalid_amount"),
        ({"phone": "0912345678", "amount": "nhiều"}, "k", 422, "validation_error"),
        ({"phone": "0912345678", "amount": 1000}, None, 422, "missing_idempotency_key"),
    ],
)
def test_earn_errors(app: Flask, key: str, member: Member, body, idem, status, code) -> None:
    response = call(app, "POST", "/earns", key, idem, json=body)
    assert (response.status_code, error_code(response)) == (status, code)


def test_earn_malformed_json_and_blocked_member(app: Flask, session: Session, key: str, member: Member) -> None:
    bad = call(app, "POST", "/earns", key, "k", data="{nope", content_type="application/json")
    assert (bad.status_code, error_code(bad)) == (400, "bad_request")
    set_blocked(session, member.id, True)
    session.commit()
    blocked = call(app, "POST", "/earns", key, "k2", json={"member_id": member.id, "amount": 100_000})
    assert (blocked.status_code, error_code(blocked)) == (403, "member_blocked")


def test_reverse(app: Flask, session: Session, key: str, member: Member, shop) -> None:
    entry_id = call(app, "POST", "/earns", key, "b1", json={"member_id": member.id, "amount": 100_000}).get_json()[
        "entry_id"
    ]
    done = call(app, "POST", f"/earns/{entry_id}/reverse", key)
    assert done.status_code == 200 and done.get_json()["balance"] == 0 and done.get_json()["points"] == -10
    again = call(app, "POST", f"/earns/{entry_id}/reverse", key)  # a retried refund: the same result, no change
    assert again.status_code == 200 and again.get_json() == done.get_json()
    other_store = create_api_key(session, store_id=shop["stores"]["OUTLET"].id, name="x", created_by_id=None).secret
    session.commit()
    assert error_code(call(app, "POST", f"/earns/{entry_id}/reverse", other_store)) == "entry_not_found"
    assert error_code(call(app, "POST", "/earns/999999/reverse", key)) == "entry_not_found"


def test_reverse_after_points_were_spent(app: Flask, session: Session, key: str, member: Member, shop) -> None:
    entry_id = call(app, "POST", "/earns", key, "b1", json={"member_id": member.id, "amount": 1_000_000}).get_json()[
        "entry_id"
    ]
    rewards.redeem(session, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="r", now=datetime.now(UTC))
    session.commit()
    refused = call(app, "POST", f"/earns/{entry_id}/reverse", key)
    assert (refused.status_code, error_code(refused)) == (409, "insufficient_points")


def test_claims(app: Flask, key: str) -> None:
    created = call(app, "POST", "/claims", key, "c1", json={"amount": 250_000, "bill_ref": "HD7"})
    assert created.status_code == 201
    claim = created.get_json()["claim"]
    assert re.fullmatch(r"[A-Z2-9]{6}", claim["code"]) and claim["chat_text"] == f"#{claim['code']}"
    assert claim["url"] == f"http://127.0.0.1:5000/c/{claim['code']}"
    assert (
        call(app, "POST", "/claims", key, "c1", json={"amount": 250_000}).get_json()["claim"]["code"] == claim["code"]
    )
    png = call(app, "GET", f"/claims/{claim['code']}/qr.png", key)
    svg = call(app, "GET", f"/claims/{claim['code']}/qr.svg", key)
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert error_code(call(app, "GET", "/claims/ZZZZZZ/qr.png", key)) == "claim_not_found"
    assert error_code(call(app, "POST", "/claims", key, "c2", json={"amount": -5})) == "invalid_amount"


def test_vouchers(app: Flask, session: Session, key: str, member: Member, shop) -> None:
    now = datetime.now(UTC)
    ledger.adjust(session, member.id, 300, key="g", reason="tặng", actor=ledger.SYSTEM, now=now, expires_at=None)
    v1 = rewards.redeem(session, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="r1", now=now).voucher
    v2 = rewards.redeem(session, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="r2", now=now).voucher
    session.commit()
    checked = call(app, "GET", f"/vouchers/{v1.code.lower()}", key).get_json()["voucher"]
    assert checked["usable"] and checked["status"] == "issued" and checked["reward"]["name"] == "Cà phê sữa đá"
    used = call(app, "POST", f"/vouchers/{v1.code}/redeem", key, "u1")
    assert used.status_code == 200 and used.get_json()["voucher"]["status"] == "used"
    assert call(app, "POST", f"/vouchers/{v1.code}/redeem", key, "u1").status_code == 200  # retried request
    twice = call(app, "POST", f"/vouchers/{v1.code}/redeem", key, "u2")
    assert (twice.status_code, error_code(twice)) == (409, "voucher_used")
    wrong = call(app, "POST", f"/vouchers/{v2.code}/redeem", key, "u3", json={"member_id": member.id + 1})
    assert (wrong.status_code, error_code(wrong)) == (422, "voucher_wrong_member")
    assert error_code(call(app, "GET", "/vouchers/ZZZZZZZZ", key)) == "voucher_not_found"
    assert error_code(call(app, "POST", f"/vouchers/{v2.code}/redeem", key)) == "missing_idempotency_key"
    with time_machine.travel(now + timedelta(days=31)):
        assert call(app, "GET", f"/vouchers/{v2.code}", key).get_json()["voucher"]["status"] == "expired"
        expired = call(app, "POST", f"/vouchers/{v2.code}/redeem", key, "u4")
        assert (expired.status_code, error_code(expired)) == (422, "voucher_expired")


def test_unknown_endpoint_is_json(app: Flask, key: str) -> None:
    response = call(app, "GET", "/nope", key)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_openapi_matches_the_live_routes(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    live = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule[len("/api/v1") :])
            live |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert live == documented
    assert spec["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-Api-Key"}


def test_cli_creates_and_revokes_keys(app: Flask, session: Session, shop, member: Member) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["apikey", "create", "--store", "Q1", "--name", "KiotViet"])
    secret = result.output.strip().splitlines()[-1]
    assert result.exit_code == 0 and secret.startswith("td_")
    assert call(app, "GET", "/members/lookup?phone=0912345678", secret).status_code == 200
    assert runner.invoke(args=["apikey", "revoke", secret[:11]]).output.strip() == "revoked"
    assert call(app, "GET", "/members/lookup?phone=0912345678", secret).status_code == 401
    assert runner.invoke(args=["apikey", "create", "--store", "NOPE"]).exit_code != 0


def test_cli_creates_staff(app: Flask, shop) -> None:
    result = app.test_cli_runner().invoke(
        args=["staff", "create", "hoa", "--role", "cashier", "--store", "Q1", "--password", "mat-khau-123"]
    )
    assert result.exit_code == 0 and "created cashier hoa" in result.output
    short = app.test_cli_runner().invoke(args=["staff", "create", "lan", "--password", "123"])
    assert short.exit_code != 0 and "Mật khẩu cần ít nhất 8 ký tự." in short.output


def test_guessing_voucher_codes_is_throttled(app: Flask, key: str, member: Member) -> None:
    for i in range(10):
        assert error_code(call(app, "GET", f"/vouchers/ZZZZZZZ{i}", key)) == "voucher_not_found"
    blocked = call(app, "GET", "/vouchers/ZZZZZZZZ", key)
    assert (blocked.status_code, error_code(blocked)) == (429, "too_many_attempts")
