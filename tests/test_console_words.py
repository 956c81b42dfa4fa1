"""What owners tripped over: error pages in English, "staff:3" and raw keys in the logs, a favicon 404."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.describe import actor_label, detail_text
from loyalty.members import create_member
from models import Staff, utcnow
from tests.console_support import login, staffed_shop, text_of


def test_details_and_actors_read_as_words() -> None:
    cashier = Staff(id=3, username="hoa", name="Thu ngân Hoa", password_hash="", role="cashier")
    assert actor_label("staff:3", {3: cashier}) == "Thu ngân Hoa"
    assert actor_label("api:7", {}) == "Khóa API #7" and actor_label("cli", {}) == "Dòng lệnh trên máy chủ"
    assert (
        detail_text({"amount": 250_000, "bill_ref": "HD12", "points": 25})
        == "Số tiền: 250.000đ; Hóa đơn: HD12; Điểm: 25"
    )
    assert detail_text({"earn_rate.points": [1, 2]}) == "earn_rate.points: 1 → 2"
    assert detail_text({"preset": "spa", "stores": ["Q1"]}) == "Chương trình khởi đầu: spa; Cửa hàng: Q1"


def test_the_audit_log_and_member_history_name_people_and_say_what_happened(app: Flask, session: Session) -> None:
    staffed_shop(session)
    lan = create_member(session, now=utcnow(), name="Lan", zalo_user_id="u-lan")
    session.commit()
    cashier = login(app, "thu-ngan")
    cashier.post(f"/counter/members/{lan.id}/earn", {"amount": "250000", "bill_ref": "HD12", "op": "w1"})
    owner = login(app, "chu")
    audit = text_of(owner.get("/admin/audit"))
    assert "Số tiền: 250.000đ" in audit and "Hóa đơn: HD12" in audit and "amount:" not in audit
    history = text_of(owner.get(f"/admin/members/{lan.id}"))
    name = session.scalar(select(Staff.name).where(Staff.username == "thu-ngan"))
    assert f"({name})" in history and "staff:" not in history


def test_error_pages_are_vietnamese_except_for_machines(app: Flask, session: Session) -> None:
    staffed_shop(session)
    client = app.test_client()
    missing = client.get("/khong-co-trang-nay")
    assert (
        missing.status_code == 404
        and "Không tìm thấy trang" in text_of(missing)
        and "Not Found" not in text_of(missing)
    )
    assert client.get("/api/v1/khong-co").json["error"]["code"] == "not_found"  # the POS API keeps its JSON
    assert client.get("/webhooks/zalo").status_code == 405  # Zalo reads the code, not a page
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and "Không hỗ trợ thao tác này" in text_of(wrong_method)
    assert client.get("/favicon.ico").status_code == 200


def test_a_server_error_page_is_drawn_even_when_the_database_is_what_failed(app: Flask, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.exceptions import InternalServerError

    from console import errors

    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("database gone")

    monkeypatch.setattr(errors, "render_template", broken)
    with app.test_request_context("/admin/"):
        response = errors._page(InternalServerError())
    assert response.status_code == 500 and "Có lỗi xảy ra" in response.get_data(as_text=True)
