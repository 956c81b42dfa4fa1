"""The Zalo client against `responses`: envelope errors, transport errors, single-flight token refresh."""

import threading
import time
from urllib.parse import parse_qs

import pytest
import requests
import responses
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import OaToken
from tests.helpers import CS_URL, TOKEN_URL, ZaloFake
from tichdiem.extensions import Services
from zalo import errors
from zalo.client import ZaloClient
from zalo.tokens import DatabaseTokenStore, TokenPair


def envelope(code: int, message: str = "x") -> dict:
    return {"error": code, "message": message}


@pytest.mark.parametrize(
    ("code", "cls", "retryable"),
    [
        (-32, errors.ZaloRateLimited, True),
        (-230, errors.ZaloOutsideWindow, False),
        (-232, errors.ZaloOutsideWindow, False),
        (-234, errors.ZaloNightBan, True),
        (-213, errors.ZaloUserUnreachable, False),
        (-100, errors.ZaloAttachmentExpired, False),
        (-201, errors.ZaloError, False),
        (-211, errors.ZaloOutOfQuota, True),
        (-249, errors.ZaloTemplateUidRefused, False),
        (-1121, errors.ZaloTemplateRefused, False),
        (-133, errors.ZaloNightBan, True),
    ],
)
def test_error_envelope_maps_to_typed_errors(
    services: Services, zalo: ZaloFake, code: int, cls: type, retryable: bool
) -> None:
    zalo.answer_messages(envelope(code))
    with pytest.raises(cls) as raised:
        services.zalo.send_message("u1", {"text": "hi"})
    assert type(raised.value) is cls and raised.value.code == code and raised.value.retryable is retryable


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_a_retryable_transport_error(services: Services, zalo: ZaloFake, status: int) -> None:
    zalo.mock.add(responses.POST, CS_URL, body="<html>bad gateway</html>", status=status)
    with pytest.raises(errors.ZaloTransportError) as raised:
        services.zalo.send_message("u1", {"text": "hi"})
    assert raised.value.retryable


def test_timeout_is_a_retryable_transport_error(services: Services, zalo: ZaloFake) -> None:
    zalo.mock.add(responses.POST, CS_URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(errors.ZaloTransportError):
        services.zalo.send_message("u1", {"text": "hi"})


def test_client_uses_timeouts() -> None:
    client = ZaloClient(tokens=DatabaseTokenStore.__new__(DatabaseTokenStore), app_id="a", app_secret="s")
    assert client.timeout == (3.05, 10.0)


def test_expired_token_is_refreshed_once_and_the_call_retried(
    services: Services, zalo: ZaloFake, session: Session
) -> None:
    zalo.answer_messages(envelope(-216, "Access token is invalid"))
    zalo.accept_messages("after-refresh")
    zalo.accept_refresh("AT-new", "RT-new", "90000")

    assert services.zalo.send_message("u1", {"text": "hi"}) == "after-refresh"

    cs_calls = zalo.calls_to(CS_URL)
    assert [c.request.headers["access_token"] for c in cs_calls] == ["AT-initial", "AT-new"]
    refresh = zalo.calls_to(TOKEN_URL)
    assert len(refresh) == 1
    assert refresh[0].request.headers["secret_key"] == "app-secret-xyz"
    assert refresh[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(refresh[0].request.body) == {
        "refresh_token": ["RT-initial"],
        "app_id": ["3349222483842580322"],
        "grant_type": ["refresh_token"],
    }
    row = session.scalars(select(OaToken)).one()
    assert (row.access_token, row.refresh_token, row.refresh_count) == ("AT-new", "RT-new", 1)
    assert row.expires_at is not None


def test_minus_220_also_refreshes(services: Services, zalo: ZaloFake) -> None:
    zalo.answer_messages(envelope(-220, "expired"))
    zalo.accept_messages("ok")
    zalo.accept_refresh()
    assert services.zalo.send_message("u1", {"text": "hi"}) == "ok"


def test_refresh_is_tried_once_only(services: Services, zalo: ZaloFake) -> None:
    zalo.answer_messages(envelope(-216), envelope(-216))
    zalo.accept_refresh()
    with pytest.raises(errors.ZaloTokenError):
        services.zalo.send_message("u1", {"text": "hi"})
    assert len(zalo.calls_to(TOKEN_URL)) == 1
    assert len(zalo.calls_to(CS_URL)) == 2


def test_refused_refresh_is_an_auth_error(services: Services, zalo: ZaloFake, session: Session) -> None:
    zalo.answer_messages(envelope(-216))
    zalo.mock.add(responses.POST, TOKEN_URL, json={"error": -14014, "error_name": "Invalid refresh token"})
    with pytest.raises(errors.ZaloAuthError, match="Invalid refresh token"):
        services.zalo.send_message("u1", {"text": "hi"})
    assert session.scalars(select(OaToken)).one().refresh_token == "RT-initial"  # nothing half-written


def test_concurrent_refreshes_use_the_refresh_token_once(services: Services, zalo: ZaloFake, session: Session) -> None:
    """Eight workers see -216 at once; Zalo's single-use refresh token must be spent exactly once."""
    tokens = services.zalo.tokens
    assert isinstance(tokens, DatabaseTokenStore)
    stale = tokens.access_token()
    exchanges: list[str] = []

    def exchange(refresh_token: str) -> TokenPair:
        exchanges.append(refresh_token)
        time.sleep(0.2)  # a slow Zalo widens the race window
        return TokenPair("AT-2", "RT-2", 90000)

    results: list[str] = []
    barrier = threading.Barrier(8)

    def refresh() -> None:
        # Each thread its own store (as separate worker processes would have), sharing the database.
        store = DatabaseTokenStore(services.sessions, TokenPair("AT-initial", "RT-initial"))
        barrier.wait()
        results.append(store.refresh(stale, exchange))

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert exchanges == ["RT-initial"]
    assert results == ["AT-2"] * 8
    assert session.scalars(select(OaToken)).one().refresh_token == "RT-2"


def test_a_token_another_process_refreshed_is_taken_without_spending_the_refresh_token(
    services: Services, zalo: ZaloFake, session: Session
) -> None:
    """Each process keeps the access token it read for a while; when another process has refreshed the pair
    meanwhile, Zalo refuses the old token once and the stored new one is used, with no second refresh."""
    assert services.zalo.tokens.access_token() == "AT-initial"  # this worker has read (and keeps) the token
    row = session.scalars(select(OaToken)).one()
    row.access_token, row.refresh_token = "AT-other", "RT-other"  # another worker refreshed the pair
    session.commit()
    zalo.answer_messages(envelope(-216, "Access token is invalid"))
    zalo.accept_messages("m-1")
    assert services.zalo.send_message("u1", {"text": "hi"}) == "m-1"
    assert [c.request.headers["access_token"] for c in zalo.calls_to(CS_URL)] == ["AT-initial", "AT-other"]
    assert zalo.calls_to(TOKEN_URL) == []  # the single-use refresh token was not spent again
    zalo.accept_messages("m-2")
    assert services.zalo.send_message("u1", {"text": "again"}) == "m-2"
    assert zalo.calls_to(CS_URL)[-1].request.headers["access_token"] == "AT-other"


def test_new_pair_in_environment_replaces_stored_pair(services: Services, session: Session) -> None:
    DatabaseTokenStore(services.sessions, TokenPair("AT-initial", "RT-initial")).access_token()
    store = DatabaseTokenStore(services.sessions, TokenPair("AT-regranted", "RT-regranted"))
    assert store.access_token() == "AT-regranted"
    assert session.scalars(select(OaToken)).one().refresh_token == "RT-regranted"


def test_user_detail_sends_data_param(services: Services, zalo: ZaloFake) -> None:
    zalo.profile("Lan", user_id="u1")
    assert services.zalo.user_detail("u1")["display_name"] == "Lan"
    (call,) = zalo.calls_to("https://openapi.zalo.me/v3.0/oa/user/detail")
    assert parse_qs(call.request.url.split("?", 1)[1]) == {"data": ['{"user_id": "u1"}']}
    assert call.request.headers["access_token"] == "AT-initial"


# --- the calls of issue 21, against answers in the shapes their sources show (tests/fixtures/zalo/README.md) ---


def api_fixture(name: str) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "fixtures" / "zalo" / "api" / f"{name}.json").read_text())


def test_user_detail_reads_a_real_answer(services: Services, zalo: ZaloFake) -> None:
    zalo.mock.upsert(responses.GET, "https://openapi.zalo.me/v3.0/oa/user/detail", json=api_fixture("user_detail"))
    data = services.zalo.user_detail("8958041078911298472")
    assert data["display_name"] == "Trong Giap" and data["user_is_follower"] is False


def test_followers_page_through_getlist(services: Services, zalo: ZaloFake) -> None:
    url = "https://openapi.zalo.me/v3.0/oa/user/getlist"
    zalo.mock.add(responses.GET, url, json=api_fixture("user_getlist"))
    assert services.zalo.followers(0) == (3, ["8958041078911298472", "6116385347651372339"])
    (call,) = zalo.calls_to(url)
    assert parse_qs(call.request.url.split("?", 1)[1]) == {"data": ['{"offset": 0, "count": 50, "is_follower": true}']}


def test_template_info_and_a_send_by_phone(services: Services, zalo: ZaloFake) -> None:
    import json

    zns = "https://business.openapi.zalo.me"
    zalo.mock.add(responses.GET, f"{zns}/template/info/v2", json=api_fixture("template_info_v2"))
    zalo.mock.add(responses.POST, f"{zns}/message/template", json=api_fixture("zbs_send_by_phone"))
    info = services.zalo.template_info("7895417a7d3f9461cd2e")
    assert info["status"] == "ENABLE" and [p["name"] for p in info["listParams"]][0] == "customer_name"
    sent = services.zalo.send_template_by_phone(
        "84987654321", "7895417a7d3f9461cd2e", {"customer_name": "Hà"}, "k" * 60
    )
    assert sent == "a4b8b4e2d1e4c1f09a7e"
    info_call, send_call = zalo.calls_to(f"{zns}/template/info/v2")[0], zalo.calls_to(f"{zns}/message/template")[0]
    assert info_call.request.headers["access_token"] == send_call.request.headers["access_token"] == "AT-initial"
    assert json.loads(send_call.request.body)["tracking_id"] == "k" * 48  # Zalo takes at most 48


def test_business_api_token_error_refreshes_once(services: Services, zalo: ZaloFake) -> None:
    zns = "https://business.openapi.zalo.me/message/template"
    zalo.mock.add(responses.POST, zns, json={"error": -124, "message": "Access token is invalid"})
    zalo.mock.add(responses.POST, zns, json=api_fixture("zbs_send_by_phone"))
    zalo.accept_refresh("AT-2", "RT-2")
    assert services.zalo.send_template_by_phone("84987654321", "t", {}, "k") == "a4b8b4e2d1e4c1f09a7e"


@pytest.mark.parametrize("shape", ["list", "object"])
def test_the_quota_is_read_as_a_list_of_assets_or_one_object(services: Services, zalo: ZaloFake, shape: str) -> None:
    answer = api_fixture("quota_message")
    if shape == "object":
        answer["data"] = answer["data"][0]
    zalo.mock.add(responses.POST, "https://openapi.zalo.me/v3.0/oa/quota/message", json=answer)
    quota = services.zalo.message_quota()
    assert quota is not None and (quota.remain, quota.total) == (1873, 2000)
