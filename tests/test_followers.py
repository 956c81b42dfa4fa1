"""The OA's follower list (issue 21): followers from before the bot are found, page by page, resumably."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
import time_machine
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import followers
from models import FollowerSync, ZaloUser, utcnow
from tests.conftest import Demo
from tests.console_support import login, text_of
from tests.helpers import OPENAPI, ZaloFake, run_jobs

GETLIST = f"{OPENAPI}/v3.0/oa/user/getlist"


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(followers, "PAGE_PAUSE", 0)


def answer_pages(zalo: ZaloFake, ids: list[str], fail_at: dict[int, dict[str, Any]] | None = None) -> None:
    """Zalo's user/getlist over `ids`, reading offset/count from the `data` parameter as Zalo does."""

    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = json.loads(parse_qs(urlparse(request.url).query)["data"][0])
        assert query["is_follower"] is True and query["count"] <= 50
        offset = query["offset"]
        if fail_at and offset in fail_at:
            return 200, {}, json.dumps(fail_at.pop(offset))
        users = [{"user_id": i} for i in ids[offset : offset + query["count"]]]
        body = {"error": 0, "message": "Success", "data": {"total": len(ids), "count": len(users), "users": users}}
        return 200, {}, json.dumps(body)

    zalo.mock.add_callback(responses.GET, GETLIST, callback=page)


def offsets_asked(zalo: ZaloFake) -> list[int]:
    return [json.loads(parse_qs(urlparse(c.request.url).query)["data"][0])["offset"] for c in zalo.calls_to(GETLIST)]


def start(app: Flask) -> str:
    with app.app_context():
        return followers.follower_sync_tick()


def test_the_first_sync_finds_every_follower_from_before_the_bot(app: Flask, zalo: ZaloFake, session: Session) -> None:
    ids = [f"{9_000_000_000 + i}" for i in range(120)]
    session.add(ZaloUser(user_id=ids[0], is_follower=True, created_at=utcnow()))  # followed since the bot runs
    session.commit()
    answer_pages(zalo, ids)
    assert start(app) == "started"
    run_jobs(app)
    assert offsets_asked(zalo) == [0, 50, 100]
    following = set(session.scalars(select(ZaloUser.user_id).where(ZaloUser.is_follower.is_(True))))
    assert following == set(ids)
    sync = session.scalars(select(FollowerSync)).one()
    assert (sync.status, sync.trigger, sync.seen, sync.total, sync.new_users) == ("done", "first", 120, 120, 119)
    assert start(app) == "recent"  # once a day, not every hour


def test_a_rate_limited_sync_goes_on_from_where_it_stopped(app: Flask, zalo: ZaloFake, session: Session) -> None:
    ids = [f"{9_000_000_000 + i}" for i in range(80)]
    answer_pages(zalo, ids, fail_at={50: {"error": -32, "message": "reached limit call api"}})
    start(app)
    run_jobs(app)
    sync = session.scalars(select(FollowerSync)).one()
    assert (sync.status, sync.next_offset, sync.seen) == ("running", 50, 50) and "-32" in (sync.error or "")
    run_jobs(app, include_scheduled=True)  # the minute's wait is over
    session.expire_all()
    assert offsets_asked(zalo) == [0, 50, 50]  # the first page is not read again
    assert (sync.status, sync.seen, sync.error) == ("done", 80, None)


def test_a_sync_whose_job_was_lost_is_resumed_by_the_tick(app: Flask, zalo: ZaloFake, session: Session) -> None:
    ids = [f"{9_000_000_000 + i}" for i in range(60)]
    answer_pages(zalo, ids)
    start(app)
    app.extensions["tichdiem"].queue.empty()  # Redis lost the job
    assert start(app) == "running"
    with time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert start(app) == "resumed"
        assert start(app) == "running"  # one resume per stall
    run_jobs(app)
    assert session.scalars(select(FollowerSync)).one().status == "done"


def test_without_the_permission_the_sync_stops_with_zalos_reason(app: Flask, zalo: ZaloFake, session: Session) -> None:
    answer_pages(zalo, [], fail_at={0: {"error": -223, "message": "OA has not authorized this API"}})
    start(app)
    run_jobs(app)
    sync = session.scalars(select(FollowerSync)).one()
    assert sync.status == "failed" and "-223" in (sync.error or "")
    with time_machine.travel(utcnow() + timedelta(hours=21)):
        assert start(app) == "started"  # tomorrow's pass tries again


def test_a_follower_is_dropped_only_after_missing_two_complete_passes(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    ids = [f"{9_000_000_000 + i}" for i in range(10)]
    answer_pages(zalo, ids)
    start(app)
    run_jobs(app)
    gone = ids.pop()  # unfollowed without our hearing of it (a missed webhook)

    def next_pass() -> None:
        with time_machine.travel(utcnow() + timedelta(hours=21), tick=True), app.app_context():
            with app.extensions["tichdiem"].sessions() as s:
                followers.start_sync(s, "console", utcnow())
                s.commit()
            run_jobs(app)

    next_pass()
    session.expire_all()
    assert session.scalars(select(ZaloUser).where(ZaloUser.user_id == gone)).one().is_follower  # once: kept
    next_pass()
    session.expire_all()
    assert not session.scalars(select(ZaloUser).where(ZaloUser.user_id == gone)).one().is_follower
    assert session.scalars(select(FollowerSync).order_by(FollowerSync.id.desc())).first().no_longer_following == 1


def test_the_dashboard_shows_followers_and_a_marketer_can_sync_now(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    from console.staff import create_staff

    for username, role in (("chu", "owner"), ("mkt", "marketer"), ("thu-ngan", "cashier")):
        create_staff(session, username=username, password="mat-khau-123", role=role, name=username)
    session.commit()
    answer_pages(zalo, [f"{9_000_000_000 + i}" for i in range(3)])
    marketer = login(app, "mkt")
    assert "Chưa đồng bộ lần nào" in text_of(marketer.get("/admin/"))
    assert login(app, "thu-ngan").post("/admin/followers/sync").status_code == 403
    assert marketer.post("/admin/followers/sync").status_code == 302
    run_jobs(app)
    page = text_of(marketer.get("/admin/"))
    assert "3</strong> người đang quan tâm OA" in page and "3 người, 3 người mới" in page


def test_the_demo_oa_has_followers_from_before_and_the_sync_finds_them(demo: Demo) -> None:
    """The emulator plays an established OA: Zalo's list holds followers our app never had an event for."""
    from emulator.views import FOLLOWERS_BEFORE_THE_BOT

    with demo.app.app_context():
        assert followers.follower_sync_tick() == "started"
    demo.pump()
    with demo.app.extensions["tichdiem"].sessions() as s:
        known = s.scalars(select(ZaloUser).where(ZaloUser.is_follower.is_(True))).all()
        assert len(known) == FOLLOWERS_BEFORE_THE_BOT
        assert s.scalars(select(FollowerSync)).one().status == "done"


def test_the_emulator_pages_as_zalo_does(demo: Demo) -> None:
    token = demo.state.access_token

    def getlist(**query: object) -> dict[str, Any]:
        url = f"{demo.base}/_emulator/openapi/v3.0/oa/user/getlist"
        params = {"data": json.dumps({"is_follower": True, **query})}
        return requests.get(url, params=params, headers={"access_token": token}, timeout=5).json()

    assert getlist(offset=0, count=51)["error"] == -201
    assert getlist(offset=9952, count=10)["error"] == -201
    first, last = getlist(offset=0, count=25), getlist(offset=25, count=25)
    assert first["data"]["total"] == 30 and len(first["data"]["users"]) == 25 and len(last["data"]["users"]) == 5


def test_user_detail_tells_who_follows_and_a_failed_fetch_is_not_repeated_per_message(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    from tests.helpers import post_event, text_event

    detail = f"{OPENAPI}/v3.0/oa/user/detail"
    zalo.accept_messages()
    post_event(app.test_client(), text_event("trợ giúp", "m-1"))  # no follow event ever: followed long ago
    run_jobs(app)
    assert session.scalars(select(ZaloUser)).one().is_follower  # user/detail's user_is_follower
    zalo.mock.upsert(responses.GET, detail, json={"error": -201, "message": "user not visible"})
    with time_machine.travel(utcnow() + timedelta(days=8)):  # the profile is stale: fetched again, and fails
        for n in range(3):
            post_event(app.test_client(), text_event("trợ giúp", f"m-later-{n}"))
            run_jobs(app)
    assert len(zalo.calls_to(detail)) == 2  # the first, and one failed try: not one per message


def test_the_emulator_sends_receipts_as_zalo_shapes_them(demo: Demo) -> None:
    """The OA as sender, the customer as recipient: the app records delivered and seen on its own rows."""
    from models import OutboxMessage, WebhookEvent

    user = demo.customer(name="Khách Biên Nhận", phone="0900000002", birthday="")
    demo.act(user, "follow")
    demo.act(user, "seen")
    with demo.app.extensions["tichdiem"].sessions() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.zalo_user_id == user)).all()
        assert rows and all(r.delivered_at is not None and r.seen_at is not None for r in rows)
        receipts = s.scalars(select(WebhookEvent).where(WebhookEvent.event_name.like("user_%_message"))).all()
        assert {e.payload["sender"]["id"] for e in receipts} == {demo.app.extensions["tichdiem"].settings.zalo_oa_id}
        assert s.scalars(select(ZaloUser).where(ZaloUser.user_id == "demo-oa")).all() == []  # never a user
