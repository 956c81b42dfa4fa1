"""Member groups (issue 17): from an import's "Nhóm" column or picked in the member list, filtered on, used
as a broadcast audience, and forgotten with an erased member (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.groups import add_to_group, groups_of, split_groups
from loyalty.members import create_member
from loyalty.segments import Segment, audience_query
from models import AuditLog, Member, MemberGroup, ZaloUser
from tests.console_support import login, staffed_shop, text_of
from tests.test_console_transfer import upload

NOW = datetime.now(UTC)
LIST = 'Họ tên,SĐT,Nhóm\nAn,0911000001,"Khách sỉ, VIP"\nBình,0911000002,Khách sỉ\nChi,0911000003,\n'


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def members_in(session: Session, group: str) -> list[str]:
    session.expire_all()
    stmt = select(Member.name).join(MemberGroup, MemberGroup.member_id == Member.id).where(MemberGroup.name == group)
    return sorted(session.scalars(stmt))


def test_split_groups_reads_a_cell_as_people_type_it() -> None:
    assert split_groups(" Khách sỉ ,VIP; vip  |  ") == ["Khách sỉ", "VIP", "vip"]
    assert split_groups("") == []


def test_the_import_fills_groups_and_a_second_file_only_adds(app: Flask, session: Session, shop) -> None:
    from tests.helpers import run_jobs

    mkt = login(app, "mkt")
    job_page = upload(mkt, "nhom.csv", LIST.encode()).headers["Location"]
    assert "<td>Khách sỉ, VIP</td>" in text_of(mkt.get(job_page))  # the preview shows the groups
    mkt.post(f"{job_page}/confirm", page=job_page)
    run_jobs(app)
    assert members_in(session, "Khách sỉ") == ["An", "Bình"] and members_in(session, "VIP") == ["An"]

    again = "Họ tên,SĐT,Nhóm\nBình,0911000002,VIP\nAn,0911000001,VIP\n"
    job_page = upload(mkt, "nhom-2.csv", again.encode()).headers["Location"]
    page = text_of(mkt.get(job_page))
    assert '<strong id="n-update">1</strong>' in page  # Bình joins VIP; An is in it already
    mkt.post(f"{job_page}/confirm", page=job_page)
    run_jobs(app)
    assert members_in(session, "VIP") == ["An", "Bình"] and members_in(session, "Khách sỉ") == ["An", "Bình"]


def test_picked_in_the_list_filtered_and_removed(app: Flask, session: Session, shop) -> None:
    a = create_member(session, now=NOW, name="An", phone="84911000001")
    b = create_member(session, now=NOW, name="Bình", phone="84911000002")
    create_member(session, now=NOW, name="Chi", phone="84911000003")
    session.commit()
    mkt = login(app, "mkt")
    done = mkt.post(
        "/admin/members/groups",
        {"member_ids": [str(a.id), str(b.id)], "group": "  Khách  quen "},
        page="/admin/members",
    )
    assert done.status_code == 302 and members_in(session, "Khách quen") == ["An", "Bình"]
    listed = text_of(mkt.get("/admin/members?group=Khách quen"))
    assert ">An</a>" in listed and ">Bình</a>" in listed and ">Chi</a>" not in listed and "(2)" in listed
    assert session.scalar(select(AuditLog.details).where(AuditLog.action == "group_add"))["added"] == 2
    mkt.post(f"/admin/members/{a.id}/groups/remove", {"group": "Khách quen"}, page=f"/admin/members/{a.id}")
    assert members_in(session, "Khách quen") == ["Bình"]
    assert "Bỏ khỏi nhóm" in text_of(mkt.get(f"/admin/members/{b.id}"))
    refused = mkt.post("/admin/members/groups", {"member_ids": [str(a.id)], "group": "x" * 61}, page="/admin/members")
    assert refused.status_code == 302 and groups_of(session, a.id) == []


def test_a_broadcast_can_go_to_one_group(app: Flask, session: Session, shop) -> None:
    for i, name in enumerate(("An", "Bình", "Chi")):
        uid = f"uid-{i}"
        session.add(ZaloUser(user_id=uid, is_follower=True, last_interaction_at=NOW))
        member = create_member(session, now=NOW, name=name, zalo_user_id=uid)
        member.marketing_consent = "granted"
        if name != "Chi":
            add_to_group(session, [member.id], "VIP", NOW)
    session.commit()
    ids = list(session.scalars(audience_query(Segment(group="VIP"), NOW)))
    assert sorted(session.get(Member, i).name for i in ids) == ["An", "Bình"]  # type: ignore[union-attr]
    assert Segment.from_dict(Segment(group="VIP").to_dict()).group == "VIP"
    mkt = login(app, "mkt")
    page = text_of(mkt.get("/admin/broadcasts/new"))
    assert '<option value="VIP"' in page


def test_an_erased_member_leaves_no_group(app: Flask, session: Session, shop) -> None:
    from loyalty.privacy import erase_member

    member = create_member(session, now=NOW, name="An", phone="84911000001")
    add_to_group(session, [member.id], "Nhân viên công ty A", NOW)
    erase_member(session, member.id, by="test", now=NOW)
    session.commit()
    assert session.scalar(select(func.count()).select_from(MemberGroup)) == 0
