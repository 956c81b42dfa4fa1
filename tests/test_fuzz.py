"""Fuzzing every boundary (issue 13): every route for a stranger and for each role, the POS API from its OpenAPI
description (schemathesis), and the webhook with signed, mutated events. Whatever comes in: no 5xx."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from sqlalchemy.orm import Session

from loyalty.members import create_member
from tests.console_support import login, staffed_shop
from tests.helpers import Console, fixture_bytes, post_event, run_jobs, sign

ODD_VALUES = ["1", "0", "-1", str(2**70), "ABCD-EFGH", "%00", "%E2%80%AE", "x" * 300, "'\"<>", "9999-12-31"]


@pytest.fixture
def shop(session: Session) -> dict[str, Any]:
    shop = staffed_shop(session)
    create_member(session, now=datetime.now(UTC), name="Lan", phone="84912345678", zalo_user_id="8958041078911298472")
    session.commit()
    return shop


def _paths(app: Flask) -> list[tuple[str, str]]:
    """(method, path) for every route, its variables filled with an ordinary and an odd value."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for value in ("1", ODD_VALUES[3], "ZZZZZZ"):
                path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m, v=value: _fill(m[1], v), rule.rule)
                found.append((method, path))
    return sorted(set(found))


def _fill(name: str, value: str) -> str:
    if name in ("kind", "fmt"):
        return "csv" if name == "kind" else "png"
    if name == "what":
        return "members"
    return value


@pytest.mark.slow
@pytest.mark.parametrize("who", [None, "thu-ngan", "mkt", "chu"])
def test_every_route_for_every_role_answers_without_a_server_error(app: Flask, shop, who: str | None) -> None:
    console = login(app, who) if who else Console(app)
    token = console.csrf("/login")
    rng = random.Random(13)
    failures = []
    for method, path in _paths(app):
        if path == "/logout":
            continue  # would end this client's session for the routes after it
        for query in ("", "?" + "&".join(f"{k}={rng.choice(ODD_VALUES)}" for k in ("page", "q", "tier", "from", "to"))):
            form = {
                "csrf_token": token,
                **{k: rng.choice(ODD_VALUES) for k in ("amount", "code", "op", "name", "points")},
            }
            response = console.client.open(path + query, method=method, data=form if method == "POST" else None)
            if response.status_code >= 500:
                failures.append((method, path + query, response.status_code))
    assert failures == []


@pytest.fixture
def pos_key(session: Session, shop) -> str:
    from console.staff import create_api_key

    key = create_api_key(session, store_id=shop["stores"]["Q1"].id, name="POS", created_by_id=None)
    session.commit()
    return key.secret


@pytest.mark.slow
def test_pos_api_from_its_openapi_never_answers_5xx(app: Flask, pos_key: str) -> None:
    """schemathesis draws requests for every operation of /api/v1/openapi.json, valid and not."""
    from hypothesis import given

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: Any) -> None:
            response = case.call(headers={"X-Api-Key": pos_key, "Idempotency-Key": f"fuzz-{random.random()}"})
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])

        check()


def _mutations(body: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Bodies a broken or hostile sender could produce, each still signed with our secret."""
    odd: list[Any] = [None, "", 0, -1, 2**70, 1e308, True, [], {}, "\u0000", "\ud800", "x" * 5000, {"id": "\u0000"}]
    out = []
    for key in list(body):
        for value in rng.sample(odd, 4):
            out.append({**body, key: value})
        out.append({k: v for k, v in body.items() if k != key})
    for nested in ("sender", "recipient", "message", "follower", "info"):
        if isinstance(body.get(nested), dict):
            for key in body[nested]:
                out.append({**body, nested: {**body[nested], key: rng.choice(odd)}})
    return out


@pytest.mark.slow
def test_signed_mutated_webhook_events_never_answer_5xx(app: Flask, zalo, shop) -> None:  # type: ignore[no-untyped-def]
    zalo.accept_messages()
    zalo.accept_uploads()
    rng = random.Random(21)
    names = [
        "follow",
        "user_send_text",
        "user_submit_info_v1",
        "user_submit_info_v2",
        "user_send_image",
        "user_received_message",
        "user_click_chatnow",
        "unfollow",
        "user_send_sticker",
    ]
    statuses = set()
    for name in names:
        body = json.loads(fixture_bytes(name))
        for mutated in _mutations(body, rng):
            mutated.setdefault("timestamp", "1724921900000")
            raw = json.dumps(mutated).encode()
            headers = {"X-ZEvent-Signature": sign(raw, "oa-secret-key-abc", first_id="3349222483842580322")}
            response = post_event(app.test_client(), raw, headers=headers)
            statuses.add(response.status_code)
            assert response.status_code < 500, (name, raw[:300], response.data)
    run_jobs(app)  # and the worker copes with whatever was stored
    assert 200 in statuses
