"""Tiers as OA tags (issue 21): each member's tier mirrored into an OA tag, when the owner turns it on."""

from __future__ import annotations

import json

import responses
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs import tags
from models import Member, Tier
from tests.conftest import Demo
from tests.console_support import staffed_shop
from tests.helpers import OPENAPI, ZaloFake
from tests.test_marketing import add_member, configure

TAG = f"{OPENAPI}/v2.0/oa/tag/tagfollower"
UNTAG = f"{OPENAPI}/v2.0/oa/tag/rmfollowerfromtag"
OK = {"error": 0, "message": "Success", "data": {}}


def run(app: Flask) -> int:
    with app.app_context():
        return tags.sync_tier_tags()


def bodies(zalo: ZaloFake, url: str) -> list[dict]:
    return [json.loads(c.request.body) for c in zalo.calls_to(url)]


def test_members_get_their_tier_as_a_tag_and_move_when_it_changes(app: Flask, zalo: ZaloFake, session: Session) -> None:
    shop = staffed_shop(session)
    add_member(session, "An", uid="u1", tier="Vàng", shop=shop)
    add_member(session, "Bình", uid="u2")  # the lowest tier
    zalo.mock.add(responses.POST, TAG, json=OK)
    zalo.mock.add(responses.POST, UNTAG, json=OK)
    assert run(app) == 0 and zalo.calls_to(TAG) == []  # off by default
    configure(session, tier_tags_enabled=True)
    assert run(app) == 2
    lowest = session.scalars(select(Tier).order_by(Tier.threshold)).first()
    assert sorted(b["tag_name"] for b in bodies(zalo, TAG)) == sorted(["Hạng Vàng", f"Hạng {lowest.name}"])
    assert {"user_id": "u1", "tag_name": "Hạng Vàng"} in bodies(zalo, TAG)
    assert run(app) == 0  # nothing changed: no call
    an = session.scalars(select(Member).where(Member.zalo_user_id == "u1")).one()
    an.tier_id = shop["tiers"]["Bạc"].id
    session.commit()
    assert run(app) == 1
    assert bodies(zalo, UNTAG) == [{"user_id": "u1", "tag_name": "Hạng Vàng"}]
    assert bodies(zalo, TAG)[-1] == {"user_id": "u1", "tag_name": "Hạng Bạc"}
    session.expire_all()
    assert session.get(Member, an.id).zalo_tag == "Hạng Bạc"


def test_a_missing_permission_stops_the_run_and_nothing_is_recorded(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    shop = staffed_shop(session)
    add_member(session, "An", uid="u1", tier="Vàng", shop=shop)
    configure(session, tier_tags_enabled=True)
    zalo.mock.add(responses.POST, TAG, json={"error": -223, "message": "OA has not authorized this API"})
    assert run(app) == 0
    assert session.scalars(select(Member)).one().zalo_tag is None  # tried again next run


def test_the_emulator_keeps_the_tags(demo: Demo) -> None:
    from loyalty.program import load_rules, save_rules

    user = demo.customer(name="Khách Nhãn", phone="0900000001", birthday="")
    demo.act(user, "follow")
    demo.act(user, "share_info")
    with demo.app.extensions["tichdiem"].sessions() as s:
        rules = load_rules(s)
        from dataclasses import replace

        save_rules(s, replace(rules, automations=replace(rules.automations, tier_tags_enabled=True)))
        s.commit()
    with demo.app.app_context():
        assert tags.sync_tier_tags() >= 1
    assert demo.state.tags[user] == {"Hạng Thành viên"}
