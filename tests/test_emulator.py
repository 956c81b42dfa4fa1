"""The local Zalo emulator: the real client and the real webhook, over HTTP, with Zalo's errors on demand."""

import re

import requests
from flask import Flask
from sqlalchemy import select

from models import Member, OaToken, OutboxMessage
from tests.conftest import Demo


def session_of(demo: Demo):  # type: ignore[no-untyped-def]
    return demo.app.extensions["tichdiem"].sessions()


def test_follow_register_card_and_points_over_http(demo: Demo) -> None:
    user = demo.customer()
    demo.act(user, "follow")
    welcome, info_card = demo.replies(user)
    assert welcome["text"].startswith("Chào mừng bạn đến với Cà phê Demo!")
    assert info_card["kind"] == "request_user_info" and info_card["title"] == "Thẻ thành viên Cà phê Demo"
    demo.act(user, "share_info")
    (pending,) = demo.replies(user)[2:]
    # The demo shop imported Nguyễn Thu Hà with this phone: the chat shows a code for the counter, and the
    # cashier links her (points kept) after checking it.
    code = re.search(r"mã xác nhận (\d{6})", pending["text"])[1]  # type: ignore[index]
    cashier = requests.Session()
    login_page = cashier.get(f"{demo.base}/login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)[1]  # type: ignore[index]
    cashier.post(
        f"{demo.base}/login", data={"username": "thungan", "password": "demo1234", "csrf_token": token}, timeout=5
    )
    with session_of(demo) as s:
        member_id = s.scalars(select(Member.id).where(Member.phone == "84987654321")).one()
    page = cashier.get(f"{demo.base}/counter/members/{member_id}", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    cashier.post(f"{demo.base}/counter/members/{member_id}/link", data={"code": code, "csrf_token": token}, timeout=5)
    demo.pump()
    linked, card = demo.replies(user)[3:]
    assert linked["text"].startswith("Chào Nguyễn Thu Hà! Thu ngân đã xác nhận")
    assert card["kind"] == "image"
    image = requests.get(f"{demo.base}{card['image']}", timeout=5)
    assert image.headers["Content-Type"] == "image/png" and image.content.startswith(b"\x89PNG")
    demo.act(user, "text", text="#DIEM")
    # She agreed to offers at the till (the demo's data): no consent question follows the balance.
    assert demo.replies(user)[-1]["text"].startswith("Bạn đang có 70 điểm.")
    with session_of(demo) as s:
        assert s.scalars(select(Member).where(Member.zalo_user_id == user)).one().birthday.isoformat() == "1995-05-12"
    # The demo's stamp card: her three imported bills gave three stamps; the cashier's next bill gives the fourth,
    # and the chat shows the card's picture each time.
    demo.act(user, "text", text="tem")
    stamp_card = demo.replies(user)[-1]
    assert stamp_card["kind"] == "image" and stamp_card["text"].startswith("Thẻ “Mua 5 ly tặng 1”: 3/5 tem")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    op = re.search(r'name="op" value="([^"]+)"', page)[1]  # type: ignore[index]
    form = {"amount": "55000", "op": op, "csrf_token": token}
    cashier.post(f"{demo.base}/counter/members/{member_id}/earn", data=form, timeout=5)
    demo.pump()
    points, stamped = demo.replies(user)[-2:]
    assert points["text"].startswith("+5 điểm từ hóa đơn 55.000đ")
    assert stamped["kind"] == "image" and "4/5 tem" in stamped["text"]
    picture = requests.get(f"{demo.base}{stamped['image']}", timeout=5)
    assert picture.content.startswith(b"\x89PNG") and picture.content != image.content


def test_expired_access_token_is_refreshed_through_oauth(demo: Demo) -> None:
    user = demo.customer()
    demo.act(user, "follow")
    requests.post(f"{demo.base}/_emulator/api/expire-token", timeout=5)
    demo.act(user, "text", text="trợ giúp")
    assert demo.replies(user)[-1]["text"].startswith("Bạn có thể nhắn cho Cà phê Demo các lệnh sau")
    assert demo.state.refreshes == 1
    with session_of(demo) as s:
        row = s.scalars(select(OaToken)).one()
        assert (row.access_token, row.refresh_token) == (demo.state.access_token, demo.state.refresh_token)


def test_outside_the_7_day_window_the_reply_is_recorded_as_failed(demo: Demo) -> None:
    user = demo.customer()
    demo.act(user, "follow")
    requests.post(f"{demo.base}/_emulator/api/fail", json={"code": -230, "path": "message/cs"}, timeout=5)
    demo.act(user, "text", text="điểm")
    with session_of(demo) as s:
        failed = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        assert len(failed) == 1 and "-230" in failed[0].last_error  # recorded with the reason, not retried
        assert failed[0].message["text"].startswith("Bạn chưa là thành viên")
    assert not any(r.get("text", "").startswith("Bạn chưa là thành viên") for r in demo.replies(user))


def test_rate_limit_is_retried_and_sent_once(demo: Demo) -> None:
    user = demo.customer()
    demo.act(user, "follow")
    before = len(demo.replies(user))
    requests.post(f"{demo.base}/_emulator/api/fail", json={"code": -32, "path": "message/cs"}, timeout=5)
    demo.act(user, "text", text="hạng")
    assert len(demo.replies(user)) == before  # -32: not delivered yet, the job is scheduled to retry
    demo.pump(include_scheduled=True)
    replies = demo.replies(user)
    assert len(replies) == before + 1 and replies[-1]["text"].startswith("Các hạng thành viên của Cà phê Demo:")


def test_fake_api_checks_token_and_secret(demo: Demo) -> None:
    wrong = requests.post(
        f"{demo.base}/_emulator/openapi/v3.0/oa/message/cs", headers={"access_token": "nope"}, json={}, timeout=5
    ).json()
    assert wrong["error"] == -216
    refused = requests.post(
        f"{demo.base}/_emulator/oauth/v4/oa/access_token",
        headers={"secret_key": "nope"},
        data={"grant_type": "refresh_token", "refresh_token": "x", "app_id": "demo-app"},
        timeout=5,
    )
    assert refused.json()["error"] == -14002


def test_nothing_of_the_emulator_when_disabled(app: Flask) -> None:
    client = app.test_client()
    for path in ("/_emulator/", "/_emulator/demo", "/_emulator/api/state"):
        assert client.get(path).status_code == 404
    assert client.post("/_emulator/openapi/v3.0/oa/message/cs", json={}).status_code == 404
    assert client.post("/_emulator/api/act", json={}).status_code == 404
