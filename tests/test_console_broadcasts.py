"""Broadcast pages: compose with a preview, schedule, send through the real jobs, live progress, controls."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import AuditLog, Broadcast
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import ZaloFake, run_jobs
from tests.test_marketing import add_member, texts_to

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=TZ)


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def compose(**fields: str) -> dict[str, str]:
    return {"name": "Cuối tuần", "text": "Chào {ten}, cuối tuần giảm 20%!", "when": "now", **fields}


def test_preview_shows_the_audience_and_a_personalised_example(app: Flask, session: Session, shop) -> None:
    add_member(session, "An", uid="u1", tier="Vàng", shop=shop)
    add_member(session, "Bình", uid="u2")
    mkt = login(app, "mkt")
    gold = str(shop["tiers"]["Vàng"].id)
    page = mkt.post(
        "/admin/broadcasts/new", {**compose(), "tier_ids": gold, "action": "preview"}, page="/admin/broadcasts/new"
    )
    html = text_of(page)
    assert '<strong id="audience-size">1</strong> thành viên sẽ nhận tin.' in html
    assert "Chào An, cuối tuần giảm 20%!" in html
    assert session.scalar(select(Broadcast.id)) is None  # a preview saves nothing


def test_send_now_goes_through_the_jobs_and_reports(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    add_member(session, "An", uid="u1")
    add_member(session, "Bình", uid="u2")
    with time_machine.travel(NOON):  # log in at that time too: a session signed in the future is refused
        mkt = login(app, "mkt")
        created = mkt.post(
            "/admin/broadcasts/new", {**compose(), "buttons": "rewards", "action": "save"}, page="/admin/broadcasts/new"
        )
        assert created.status_code == 302
        broadcast_id = session.scalar(select(Broadcast.id))
        assert created.headers["Location"].endswith(f"/admin/broadcasts/{broadcast_id}")
        assert mkt.get(f"/admin/broadcasts/{broadcast_id}/progress").json["live"] is True
        run_jobs(app)
    assert texts_to(zalo, "u1") == ["Chào An, cuối tuần giảm 20%!"]
    (button,) = zalo.sent_messages()[0]["message"]["attachment"]["payload"]["buttons"]
    assert button == {"title": "Đổi quà", "type": "oa.query.show", "payload": "#QUA"}  # opens the catalog
    mkt = login(app, "mkt")  # back to today: a session from NOON is past its 12 hours
    progress = mkt.get(f"/admin/broadcasts/{broadcast_id}/progress").json
    assert progress["status"] == "done" and progress["percent"] == 100 and progress["live"] is False
    assert progress["counts"] == [{"key": "sent", "label": "Đã gửi", "n": 2}]
    report = text_of(mkt.get(f"/admin/broadcasts/{broadcast_id}"))
    assert "Hoàn tất" in report and "<td>Đã gửi</td><td>2</td>" in report
    assert session.scalar(select(AuditLog.action)) == "broadcast_create"


def test_scheduled_waits_for_its_time_and_can_be_cancelled(
    app: Flask, zalo: ZaloFake, session: Session, services, shop
) -> None:
    zalo.accept_messages()
    add_member(session, "An", uid="u1")
    with time_machine.travel(NOON):  # log in at that time too: a session signed in the future is refused
        mkt = login(app, "mkt")
        mkt.post(
            "/admin/broadcasts/new",
            {**compose(when="later", send_at="2026-11-25T09:30"), "action": "save"},
            page="/admin/broadcasts/new",
        )
        broadcast = session.scalar(select(Broadcast))
        assert broadcast.status == "scheduled"
        assert broadcast.send_at == datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # 09:30 in Hà Nội
        listing = text_of(mkt.get("/admin/broadcasts/"))
        assert "Đã lên lịch" in listing and "09:30 25/11/2026" in listing
        with app.app_context():
            from jobs.broadcasts import start_due_broadcasts

            assert start_due_broadcasts() == 0
        done = mkt.post(
            f"/admin/broadcasts/{broadcast.id}/cancel", page=f"/admin/broadcasts/{broadcast.id}", follow_redirects=True
        )
        assert "Chiến dịch: Đã hủy." in text_of(done)
    with time_machine.travel(NOON + timedelta(days=1)):
        with app.app_context():
            assert start_due_broadcasts() == 0
        run_jobs(app, include_scheduled=True)
    assert zalo.sent_messages() == []


def test_pause_and_resume_from_the_page(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    for i in range(3):
        add_member(session, f"M{i}", uid=f"u{i}")
    with time_machine.travel(NOON):  # log in at that time too: a session signed in the future is refused
        mkt = login(app, "mkt")
        mkt.post("/admin/broadcasts/new", {**compose(), "action": "save"}, page="/admin/broadcasts/new")
        broadcast_id = session.scalar(select(Broadcast.id))
        with app.app_context():
            from jobs.broadcasts import start_due_broadcasts

            start_due_broadcasts()  # sending, not yet fanned out
        page = f"/admin/broadcasts/{broadcast_id}"
        assert "Tạm dừng" in text_of(mkt.post(f"{page}/pause", page=page, follow_redirects=True))
        run_jobs(app)
        assert zalo.sent_messages() == []
        again = text_of(mkt.post(f"{page}/pause", page=page, follow_redirects=True))
        assert "Không thể thực hiện: chiến dịch đang ở trạng thái “Tạm dừng”." in again
        mkt.post(f"{page}/resume", page=page)
        run_jobs(app)
    assert len(zalo.sent_messages()) == 3
    actions = list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions == ["broadcast_create", "broadcast_pause", "broadcast_resume"]


def test_form_errors_and_roles(app: Flask, session: Session, shop) -> None:
    with time_machine.travel(NOON):  # log in at that time too: a session signed in the future is refused
        mkt = login(app, "mkt")
        bad = text_of(
            mkt.post(
                "/admin/broadcasts/new",
                {"text": " ", "when": "later", "send_at": "2026-11-01T09:00", "points_min": "9", "points_max": "1"},
                page="/admin/broadcasts/new",
            )
        )
    assert "Cần nội dung tin nhắn." in bad
    assert "Thời điểm gửi đã qua." in bad
    assert "Điểm đến phải lớn hơn hoặc bằng điểm từ." in bad
    assert session.scalar(select(Broadcast.id)) is None
    assert login(app, "thu-ngan").get("/admin/broadcasts/").status_code == 403
    assert app.test_client().get("/admin/broadcasts/new").status_code == 302


def test_a_launch_campaign_reaches_every_follower_members_or_not(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    """Issue 21: "all followers" invites people who follow the OA but never joined; members get their own
    fields, others their Zalo name; blocked members and people no longer following are left out."""
    from loyalty.members import set_blocked
    from models import OutboxMessage, ZaloUser, utcnow

    zalo.accept_messages()
    add_member(session, "An", uid="u1")
    blocked = add_member(session, "Bình", uid="u2")
    set_blocked(session, blocked.id, True)
    now = utcnow()
    session.add_all(
        [
            ZaloUser(user_id="f1", display_name="Chi Lê", is_follower=True, last_interaction_at=now, created_at=now),
            ZaloUser(user_id="f2", is_follower=True, last_interaction_at=now, created_at=now),
            ZaloUser(user_id="f3", display_name="Đã bỏ", is_follower=False, created_at=now),
        ]
    )
    session.commit()
    mkt = login(app, "mkt")
    invite = compose(text="Chào {ten}! Nhắn 'đăng ký' để tích điểm tại {shop}.", audience="followers")
    refused = mkt.post(
        "/admin/broadcasts/new",
        {**invite, "text": "{ten} có {diem} điểm", "action": "preview"},
        page="/admin/broadcasts/new",
    )
    assert "{diem}" in text_of(refused) and session.scalar(select(Broadcast.id)) is None
    filtered = mkt.post(
        "/admin/broadcasts/new", {**invite, "points_min": "10", "action": "save"}, page="/admin/broadcasts/new"
    )
    assert "chỉ dành cho thành viên" in text_of(filtered) and session.scalar(select(Broadcast.id)) is None
    preview = text_of(mkt.post("/admin/broadcasts/new", {**invite, "action": "preview"}, page="/admin/broadcasts/new"))
    assert '<strong id="audience-size">3</strong> người quan tâm OA sẽ nhận tin.' in preview
    assert (
        mkt.post("/admin/broadcasts/new", {**invite, "action": "save"}, page="/admin/broadcasts/new").status_code == 302
    )
    run_jobs(app)
    assert texts_to(zalo, "u1") == ["Chào An! Nhắn 'đăng ký' để tích điểm tại Cà phê Sữa Đá."]
    assert texts_to(zalo, "f1") == ["Chào Chi Lê! Nhắn 'đăng ký' để tích điểm tại Cà phê Sữa Đá."]
    assert texts_to(zalo, "f2") == ["Chào bạn! Nhắn 'đăng ký' để tích điểm tại Cà phê Sữa Đá."]
    assert texts_to(zalo, "u2") == texts_to(zalo, "f3") == []
    broadcast = session.scalars(select(Broadcast)).one()
    assert broadcast.audience == 3 and broadcast.segment == {"followers": True}
    keys = set(session.scalars(select(OutboxMessage.key)))
    assert keys == {f"bc:{broadcast.id}:u:{uid}" for uid in ("u1", "f1", "f2")}
    assert "Mọi người đang quan tâm OA" in text_of(mkt.get(f"/admin/broadcasts/{broadcast.id}"))
