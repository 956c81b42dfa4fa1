"""Automations and broadcasts: job tests with fixed clocks, Zalo's routing rules, and a real-Redis run."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import responses
import time_machine
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import automations, broadcasts
from jobs.outbox import enqueue_delivery
from loyalty import earning, ledger
from loyalty.members import create_member
from loyalty.program import ProgramRules, load_rules, save_rules
from loyalty.segments import Segment, audience_size
from marketing import campaigns
from models import Broadcast, Member, OutboxMessage, TierEvent, Voucher, ZaloUser, utcnow
from tests.conftest import REDIS_TEST_URL
from tests.helpers import ZaloFake, credit, run_jobs, seed_shop
from zalo.errors import ZaloError

TEMPLATE_URL = "https://openapi.zalo.me/v3.0/oa/message/template"


@pytest.fixture
def shop(session: Session) -> dict:
    return seed_shop(session)


def add_member(
    session: Session,
    name: str,
    *,
    uid: str,
    interacted_days_ago: float | None = 1,
    birthday=None,
    phone: str | None = None,
    tier: str | None = None,
    shop=None,
    consent: bool = True,
) -> Member:
    from loyalty.consent import record_consent

    now = utcnow()
    member = create_member(session, now=now, name=name, zalo_user_id=uid, birthday=birthday, phone=phone)
    if consent:  # agreed to offers (the chat's "nhận tin"); the consent tests say when not
        record_consent(session, member, granted=True, channel="chat", actor=f"chat:{uid}", now=now)
    last = now - timedelta(days=interacted_days_ago) if interacted_days_ago is not None else None
    session.add(ZaloUser(user_id=uid, is_follower=True, last_interaction_at=last, created_at=now))
    if tier and shop:
        member.tier_id = shop["tiers"][tier].id
    session.commit()
    return member


def texts_to(zalo: ZaloFake, uid: str) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.sent_messages() if m["recipient"]["user_id"] == uid]


def configure(session: Session, **automation_changes) -> None:
    rules = load_rules(session)
    save_rules(session, replace(rules, automations=replace(rules.automations, **automation_changes)))
    session.commit()


# --- automations --------------------------------------------------------------------------------------


def test_birthday_voucher_and_greeting_once_a_year(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    configure(session, birthday_reward_id=shop["rewards"]["Cà phê sữa đá"].id)
    now = utcnow()
    today = now.astimezone(app.extensions["tichdiem"].settings.tz).date()
    add_member(session, "Hà", uid="u-ha", birthday=date(1995, today.month, today.day))
    add_member(session, "Khoa", uid="u-khoa", birthday=date(1990, today.month % 12 + 1, 1))
    with app.app_context():
        assert automations.birthday_offers(now) == 1
        assert automations.birthday_offers(now) == 1  # the cron ran twice: still one voucher, one message
    run_jobs(app)
    voucher = session.scalars(select(Voucher)).one()
    assert voucher.source == "birthday" and voucher.points_spent == 0
    (greeting,) = texts_to(zalo, "u-ha")
    assert greeting.startswith("Chúc mừng sinh nhật Hà! 🎂 Cà phê Sữa Đá tặng bạn Cà phê sữa đá: mã ")
    assert texts_to(zalo, "u-khoa") == []


def test_birthday_month_mode_runs_on_the_first(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    configure(session, birthday_on="month")
    add_member(session, "Mai", uid="u-mai", birthday=date(1992, 5, 20))
    first_of_may = datetime(2027, 5, 1, 3, 0, tzinfo=UTC)
    with app.app_context():
        assert automations.birthday_offers(first_of_may + timedelta(days=1)) == 0
        assert automations.birthday_offers(first_of_may) == 1
    run_jobs(app)
    assert texts_to(zalo, "u-mai") == ["Chúc mừng sinh nhật Mai! 🎂 Chúc bạn một năm thật vui từ Cà phê Sữa Đá."]


def test_tier_up_congratulation_once(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    member = add_member(session, "Lan", uid="u-lan")
    earning.earn(
        session,
        member.id,
        6_000_000,
        key="big",
        rules=ProgramRules(),
        tz=app.extensions["tichdiem"].settings.tz,
        now=utcnow(),
    )
    session.commit()
    with app.app_context():
        assert automations.congratulate_tier_ups() == 1
        assert automations.congratulate_tier_ups() == 0
    run_jobs(app)
    assert texts_to(zalo, "u-lan") == ["Chúc mừng Lan đã lên hạng Bạc! 🎉 Quyền lợi của bạn: Quà sinh nhật"]
    assert session.scalars(select(TierEvent)).one().notified_at is not None


def test_expiry_and_reminder(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    member = add_member(session, "Bảo", uid="u-bao")
    now = utcnow()
    for key, days_ago, points in (("old", 400, 30), ("soon", 360, 20), ("new", 10, 5)):
        credit(session, member, points, key, when=now - timedelta(days=days_ago))
    with app.app_context():
        assert automations.expire_points(now) == 1
        assert automations.remind_expiring(now) == 1
        assert automations.remind_expiring(now) == 1  # runs again: the key keeps it to one message
    run_jobs(app)
    session.expire_all()
    assert session.get(Member, member.id).points_balance == 25
    expiry = (now - timedelta(days=360)).astimezone(app.extensions["tichdiem"].settings.tz)
    expiry = expiry.replace(year=expiry.year + 1)
    assert texts_to(zalo, "u-bao") == [
        f'Bảo ơi, 20 điểm của bạn sẽ hết hạn ngày {expiry:%d/%m/%Y}. Nhắn "quà" để đổi ngay nhé!'
    ]


def test_automations_can_be_switched_off(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    configure(session, birthday_enabled=False, tier_up_enabled=False)
    today = utcnow().astimezone(app.extensions["tichdiem"].settings.tz).date()
    add_member(session, "Hà", uid="u-ha", birthday=date(1995, today.month, today.day))
    with app.app_context():
        assert automations.birthday_offers() == 0
    assert session.scalars(select(OutboxMessage)).all() == []


def test_outside_the_window_template_or_skip(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from models import ZaloTemplate

    zalo.accept_messages()
    zalo.mock.add(responses.POST, TEMPLATE_URL, json={"error": 0, "data": {"message_id": "t1"}})
    quiet = add_member(session, "Quang", uid="u-quiet", interacted_days_ago=9)
    with app.app_context():
        ids = automations.queue_proactive(session, quiet, key="k1", text="Xin chào {ten}", promotional=False)
        session.commit()
        enqueue_delivery(app.extensions["tichdiem"].queue, ids)
        run_jobs(app)
        skipped = session.get(OutboxMessage, ids[0])
        assert (skipped.status, skipped.last_error) == (
            "skipped",
            "outside the 7-day window and no template configured",
        )
        session.add(
            ZaloTemplate(
                purpose="expiry",
                template_id="zbs123",
                status="ENABLE",
                params=[{"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30}],
                mapping={"customer_name": "ten"},
            )
        )
        ids = automations.queue_proactive(
            session,
            quiet,
            key="k2",
            text="Bạn có 20 điểm",
            promotional=False,
            purpose="expiry",
            fields={"ten": "Quang"},
        )
        session.commit()
        enqueue_delivery(app.extensions["tichdiem"].queue, ids)
        run_jobs(app)
    (call,) = zalo.calls_to(TEMPLATE_URL)
    import json

    assert json.loads(call.request.body) == {
        "user_id": "u-quiet",
        "template_id": "zbs123",
        "template_data": {"customer_name": "Quang"},
    }
    session.expire_all()
    assert session.get(OutboxMessage, ids[0]).status == "sent"


def test_token_keeper_refreshes_before_expiry(app: Flask, zalo: ZaloFake, session: Session, services) -> None:
    from models import OaToken

    zalo.accept_refresh("AT-kept", "RT-kept", "90000")
    with app.app_context():
        assert automations.keep_token_fresh() is True  # a seeded pair of unknown age: refreshed at once
        row = session.scalars(select(OaToken)).one()
        assert (row.access_token, row.refresh_token) == ("AT-kept", "RT-kept")
        assert row.expires_at is not None and row.refresh_token_issued_at is not None
        assert automations.keep_token_fresh() is False  # 25 hours left: nothing to do
        row.expires_at = utcnow() + timedelta(minutes=30)
        session.commit()
        zalo.accept_refresh("AT-next", "RT-next", "90000")
        assert automations.keep_token_fresh() is True
    session.expire_all()
    assert session.scalars(select(OaToken)).one().access_token == "AT-next"


def test_a_failed_refresh_is_kept_and_shown_until_one_succeeds(app: Flask, zalo: ZaloFake, session: Session) -> None:
    from console.staff import create_staff
    from models import OaToken
    from tests.conftest import HEALTH
    from tests.console_support import login, text_of

    create_staff(session, username="chu", password="mat-khau-123", role="owner", name="Chủ")
    session.commit()
    zalo.refuse_refresh()
    with app.app_context(), pytest.raises(ZaloError):
        automations.keep_token_fresh()
    row = session.scalars(select(OaToken)).one()
    assert row.refresh_failed_at is not None and "refresh" in (row.refresh_error or "")
    body = app.test_client().get("/healthz", headers=HEALTH).json
    assert "zalo_token" in body["problems"]
    assert "Kết nối Zalo OA bị gián đoạn" in text_of(login(app, "chu").get("/admin/"))
    zalo.accept_refresh("AT-ok", "RT-ok", "90000")
    with app.app_context():
        assert automations.keep_token_fresh() is True
    assert "zalo_token" not in app.test_client().get("/healthz", headers=HEALTH).json["problems"]


# --- broadcasts ---------------------------------------------------------------------------------------


def make_broadcast(
    app: Flask,
    session: Session,
    segment: Segment,
    text: str = "Chào {ten}, bạn có {diem} điểm, hạng {hang}.",
    promotional: bool = False,
) -> int:
    with app.app_context():
        broadcast = campaigns.create_broadcast(
            session, name="Thử", text=text, segment=segment, send_at=None, now=utcnow(), promotional=promotional
        )
        session.commit()
        assert broadcasts.start_due_broadcasts() == 1
    return broadcast.id


def test_segments_and_audience_size(session: Session, shop) -> None:
    now = utcnow()
    add_member(session, "A", uid="a", tier="Vàng", shop=shop, birthday=date(1990, 5, 2))
    add_member(session, "B", uid="b", interacted_days_ago=40)
    c = add_member(session, "C", uid="c", interacted_days_ago=40)
    ledger.adjust(session, c.id, 300, key="c", reason="x", actor=ledger.SYSTEM, now=now, expires_at=None)
    session.commit()
    assert audience_size(session, Segment(), now) == 3
    assert audience_size(session, Segment(tier_ids=(shop["tiers"]["Vàng"].id,)), now) == 1
    assert audience_size(session, Segment(birthday_month=5), now) == 1
    assert audience_size(session, Segment(inactive_days=30), now) == 2
    assert audience_size(session, Segment(points_min=100), now) == 1
    assert audience_size(session, Segment(points_max=0, inactive_days=30), now) == 1
    assert audience_size(session, Segment(joined_from=now.date() + timedelta(days=1)), now) == 0
    assert Segment.from_dict(Segment(tier_ids=(2,), birthday_month=5).to_dict()) == Segment(
        tier_ids=(2,), birthday_month=5
    )


def test_broadcast_personalised_once_per_recipient(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.accept_messages()
    add_member(session, "An", uid="u1", tier="Vàng", shop=shop)
    add_member(session, "Bình", uid="u2")
    broadcast_id = make_broadcast(app, session, Segment())
    run_jobs(app)
    assert texts_to(zalo, "u1") == ["Chào An, bạn có 0 điểm, hạng Vàng."]
    assert texts_to(zalo, "u2") == ["Chào Bình, bạn có 0 điểm, hạng Thành viên."]
    with app.app_context():
        broadcasts.fan_out(broadcast_id)  # a re-run of the fan-out adds nobody twice
        run_jobs(app)
        report = campaigns.progress(session, broadcast_id)
    assert report["status"] == "done" and report["counts"] == {"sent": 2} and report["audience"] == 2
    assert len(zalo.sent_messages()) == 2


def test_pause_resume_cancel(app: Flask, zalo: ZaloFake, session: Session, services, shop) -> None:
    zalo.accept_messages()
    for i in range(3):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    campaigns.pause(session, broadcast_id)
    session.commit()
    run_jobs(app)
    assert zalo.sent_messages() == []
    with app.app_context():
        assert campaigns.progress(session, broadcast_id)["counts"] == {"pending": 3}
        campaigns.resume(session, broadcast_id)
        session.commit()
    run_jobs(app)
    assert len(zalo.sent_messages()) == 3
    other = make_broadcast(app, session, Segment())
    with app.app_context():
        broadcasts.fan_out(other)
    campaigns.cancel(session, other, utcnow())
    session.commit()
    run_jobs(app)
    assert len(zalo.sent_messages()) == 3
    assert campaigns.progress(session, other)["counts"] == {"cancelled": 3}


def test_the_shops_send_rate_paces_every_message_of_a_broadcast(
    settings, zalo: ZaloFake, session: Session, shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TICHDIEM_SEND_RATE=20 with 4 senders: each sender waits for its slot at 5 messages/s before every send."""
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(send_rate=20, broadcast_senders=4), config={"TESTING": True})
    slots: list[float] = []
    monkeypatch.setattr(broadcasts.Pacer, "wait", lambda pacer: slots.append(pacer._interval))  # no sleeping
    zalo.accept_messages()
    for i in range(3):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    run_jobs(app)
    assert len(zalo.sent_messages()) == 3
    assert slots == pytest.approx([0.2] * 3)  # one slot per message, at 20 / 4 = 5 per second and sender
    with app.app_context():
        assert campaigns.progress(session, broadcast_id)["counts"] == {"sent": 3}
    app.extensions["tichdiem"].engine.dispose()


def test_rate_limit_slows_the_whole_broadcast(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    zalo.answer_messages({"error": -32, "message": "Reached limit call api"})
    zalo.accept_messages()
    for i in range(4):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    run_jobs(app)
    session.expire_all()
    broadcast = session.get(Broadcast, broadcast_id)
    assert broadcast.throttle_until is not None and broadcast.throttle_seconds == 5
    with time_machine.travel(utcnow() + timedelta(seconds=10)):
        run_jobs(app, include_scheduled=True)
        run_jobs(app, include_scheduled=True)
    sent = [m["recipient"]["user_id"] for m in zalo.sent_messages()]
    assert sorted(set(sent)) == ["u0", "u1", "u2", "u3"] and len(sent) == 5  # one -32 try, then each once
    assert campaigns.progress(session, broadcast_id)["counts"] == {"sent": 4}


def test_promotions_wait_for_the_morning(app: Flask, zalo: ZaloFake, session: Session, shop) -> None:
    from rq.registry import ScheduledJobRegistry

    zalo.accept_messages()
    add_member(session, "Đêm", uid="u-night", interacted_days_ago=0.1)
    night = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 23:00 in Vietnam
    with time_machine.travel(night, tick=False):
        broadcast_id = make_broadcast(app, session, Segment(), promotional=True)
        run_jobs(app)
    assert zalo.sent_messages() == []
    queue = app.extensions["tichdiem"].queue
    scheduled = ScheduledJobRegistry(queue=queue)
    times = {scheduled.get_scheduled_time(job_id) for job_id in scheduled.get_job_ids()}
    assert datetime(2026, 11, 23, 23, 0, tzinfo=UTC) in {t.replace(tzinfo=UTC) for t in times}  # 06:00 local
    with time_machine.travel(datetime(2026, 11, 23, 23, 1, tzinfo=UTC), tick=False):
        run_jobs(app, include_scheduled=True)
    assert texts_to(zalo, "u-night") == ["Chào Đêm, bạn có 0 điểm, hạng Thành viên."]
    assert campaigns.progress(session, broadcast_id)["counts"] == {"sent": 1}


def test_broadcast_on_real_redis(settings, zalo: ZaloFake, real_redis, shop, session: Session) -> None:
    from jobs.worker import make_worker
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(redis_url=REDIS_TEST_URL), config={"TESTING": True})
    zalo.accept_messages()
    for i in range(5):
        add_member(session, f"M{i}", uid=f"r{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    make_worker(app.extensions["tichdiem"], simple=True).work(burst=True, logging_level="WARNING")
    assert sorted(m["recipient"]["user_id"] for m in zalo.sent_messages()) == [f"r{i}" for i in range(5)]
    assert campaigns.progress(session, broadcast_id)["status"] == "done"
    app.extensions["tichdiem"].engine.dispose()


def test_cron_module_registers_every_job_in_utc() -> None:
    from jobs.cron import utc_cron

    assert utc_cron(0, 5, "Asia/Ho_Chi_Minh") == "5 17 * * *"  # 00:05 in Vietnam is 17:05 UTC
    assert utc_cron(9, 0, "Asia/Ho_Chi_Minh") == "0 2 * * *"


def test_senders_started_before_the_fan_out_do_not_end_the_broadcast(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    """Pause and resume while the fan-out job still runs: the resumed senders find no rows yet."""
    zalo.accept_messages()
    for i in range(3):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())  # sending; the fan-out job is queued, not run
    with app.app_context():
        for part in range(app.extensions["tichdiem"].settings.broadcast_senders):
            assert broadcasts.send_broadcast(broadcast_id, part) == "idle"
    session.expire_all()
    assert session.get(Broadcast, broadcast_id).status == "sending"  # not "done" with nobody reached
    run_jobs(app)
    assert len(zalo.sent_messages()) == 3
    session.expire_all()
    assert session.get(Broadcast, broadcast_id).status == "done"


def test_a_dead_senders_sends_in_flight_are_unknown_and_the_broadcast_ends(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    """A sender killed with messages on their way leaves them "sending"; once its liveness key has lapsed the
    recovery tick marks them unknown (maybe delivered, never sent again) and ends a broadcast with nothing left."""
    zalo.accept_messages()
    for i in range(3):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    with app.app_context():
        broadcasts.fan_out(broadcast_id)
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)).all()
    rows[0].status, rows[1].status = "sent", "sending"  # the sender died with rows[1] in flight...
    rows[2].status = "sending"  # ...and rows[2]
    session.commit()
    services = app.extensions["tichdiem"]
    with app.app_context():
        part = rows[1].id % services.settings.broadcast_senders
        services.redis.set(broadcasts._liveness_key(broadcast_id, part), 1, ex=60)  # its sender still beats
        broadcasts.recover_broadcasts()
        session.expire_all()
        assert session.get(OutboxMessage, rows[1].id).status == "sending"  # a live sender's rows are its own
        assert session.get(Broadcast, broadcast_id).status == "sending"
        services.redis.delete(*services.redis.keys("tichdiem:broadcast:*"))  # the keys lapse: it is dead
        assert broadcasts.recover_broadcasts() == 0  # nothing pending to restart
    session.expire_all()
    assert [session.get(OutboxMessage, r.id).status for r in rows] == ["sent", "unknown", "unknown"]
    assert session.get(Broadcast, broadcast_id).status == "done"
    assert zalo.sent_messages() == []  # nothing was sent again


def test_a_sender_killed_mid_send_is_restarted_at_the_next_tick_not_after_a_minute(
    app: Flask, zalo: ZaloFake, session: Session, shop
) -> None:
    """The fault drill's worker-kill: rows a minute old was the restart's condition, so a broadcast killed in its
    first seconds waited that minute. A part caught dead with a send in flight has certainly started."""
    zalo.accept_messages()
    for i in range(9):
        add_member(session, f"M{i}", uid=f"u{i}")
    broadcast_id = make_broadcast(app, session, Segment())
    with app.app_context():
        broadcasts.fan_out(broadcast_id)
    senders = app.extensions["tichdiem"].settings.broadcast_senders
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)).all()
    part = rows[0].id % senders
    mine = [r for r in rows if r.id % senders == part]
    mine[0].status = "sending"  # killed with this one in flight, seconds after the fan-out
    session.commit()
    others = [r for r in rows if r.id % senders != part]
    assert len(mine) >= 2
    services = app.extensions["tichdiem"]
    services.redis.delete(broadcasts._liveness_key(broadcast_id, part))  # its beats stopped: the key lapsed
    services.redis.delete(*[broadcasts._liveness_key(broadcast_id, p) for p in range(senders) if p != part])
    with app.app_context():
        assert broadcasts.recover_broadcasts() == 1  # the dead part only, seconds after the fan-out
    session.expire_all()
    assert session.get(OutboxMessage, mine[0].id).status == "unknown"
    assert all(session.get(OutboxMessage, r.id).status == "pending" for r in others)  # not restarted: too young


def test_the_follower_audience_takes_no_member_filters_or_member_fields(session: Session) -> None:
    from loyalty.errors import InvalidSettings

    assert Segment.from_dict({"followers": True}).followers
    with pytest.raises(InvalidSettings):
        Segment.from_dict({"followers": True, "points_min": 10})
    with pytest.raises(InvalidSettings, match="diem"):
        campaigns.create_broadcast(
            session, name="x", text="Bạn có {diem} điểm", segment=Segment(followers=True), send_at=None, now=utcnow()
        )
