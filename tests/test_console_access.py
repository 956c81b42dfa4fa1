"""Every console page, for every role: anonymous -> login, the roles allowed -> 200, the others -> 403."""

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from loyalty.members import create_member
from models import utcnow
from tests.console_support import login, staffed_shop

MARKETER_PAGES = [
    "/admin/",
    "/admin/members",
    "/admin/members/{member}",
    "/admin/program",
    "/admin/tiers",
    "/admin/rewards",
    "/admin/rewards/new",
    "/admin/promotions",
    "/admin/broadcasts/",
    "/admin/broadcasts/new",
    "/admin/import",
    "/admin/export/members.csv",
]
OWNER_PAGES = ["/admin/staff", "/admin/api-keys", "/admin/audit"]


@pytest.fixture
def member_id(session: Session) -> int:
    staffed_shop(session)
    member = create_member(session, now=utcnow(), name="Lan")
    session.commit()
    return member.id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_page_by_role(app: Flask, member_id: int) -> None:
    owner, marketer, cashier = login(app, "chu"), login(app, "mkt"), login(app, "thu-ngan")
    anonymous = app.test_client()
    for template in MARKETER_PAGES + OWNER_PAGES:
        path = template.format(member=member_id)
        assert anonymous.get(path).status_code == 302, path
        assert anonymous.get(path).headers["Location"].startswith("/login"), path
        assert owner.get(path).status_code == 200, path
        assert marketer.get(path).status_code == (403 if template in OWNER_PAGES else 200), path
        assert cashier.get(path).status_code == 403, path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forms_refuse_a_post_without_csrf_token(app: Flask, member_id: int) -> None:
    owner = login(app, "chu")
    for path in ("/admin/program", "/admin/tiers", "/admin/broadcasts/new", "/admin/import", "/admin/staff"):
        assert owner.client.post(path, data={}).status_code == 400, path
