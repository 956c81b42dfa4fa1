"""POST /webhooks/zalo: verify, store once, enqueue after commit, answer 200 well inside Zalo's 2 s."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import OperationalError

from tichdiem.extensions import get_settings, services
from webhooks.intake import store_event
from webhooks.signature import verify_signature
from zalo.events import MalformedEvent, OaEcho, clean_body, parse_event

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

MAX_BODY_BYTES = 256 * 1024  # real events are a few hundred bytes


@bp.post("/webhooks/zalo")
def receive_zalo_event() -> tuple[Response, int]:
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        log.warning("webhook: body of %s bytes refused", len(raw))
        return _answer("body too large", 413)
    body = _load_json(raw)
    if body is None:
        log.warning("webhook: malformed JSON refused (%s bytes, sha256 %s)", len(raw), _digest(raw))
        return _answer("malformed JSON", 400)
    settings = get_settings()
    if not verify_signature(
        raw,
        request.headers.get("X-ZEvent-Signature"),
        body,
        app_id=settings.zalo_app_id,
        oa_id=settings.zalo_oa_id,
        secrets=settings.webhook_secrets,
    ):
        log.warning("webhook: bad or missing signature for %s from %s", body.get("event_name"), request.remote_addr)
        return _answer("invalid signature", 401)
    try:
        body = clean_body(body)
        event = parse_event(body, oa_id=settings.zalo_oa_id)
    except MalformedEvent as exc:
        # Signed by Zalo but unreadable: acknowledge so Zalo stops retrying, and leave a trace.
        # The body is not logged: a share-info event carries a name and a phone (logs keep no personal data).
        log.error(
            "webhook: signed but malformed event acknowledged (%s; %s bytes, sha256 %s)", exc, len(raw), _digest(raw)
        )
        return _answer("ignored: malformed event", 200)
    if isinstance(event, OaEcho):
        return _answer("ignored: echo", 200)
    if not _ours(event, body, settings.zalo_app_id, settings.zalo_oa_id):
        log.warning("webhook: event for app %r / OA %r ignored", event.app_id[:40], event.oa_id[:40])
        return _answer("ignored: another app or OA", 200)
    return _store_and_enqueue(event, body)


def _ours(event: Any, body: dict[str, Any], app_id: str, oa_id: str) -> bool:
    """Whether the event names our app and our OA (where it names them at all).

    A valid signature proves only that it was made with our secret, which the app secret and the OA secret
    key may share with the other OAs of one Zalo app.
    """
    if event.app_id and app_id and event.app_id != app_id:
        return False
    if not oa_id:
        return True
    if "oa_id" in body:  # follow, unfollow, ...
        return str(body["oa_id"]) == oa_id
    parties = {_id_of(body.get("sender")), _id_of(body.get("recipient"))}
    return "" in parties or oa_id in parties  # a message: the OA is one side of it


def _store_and_enqueue(event: Any, body: dict[str, Any]) -> tuple[Response, int]:
    try:
        event_id = store_event(services().sessions, event, body)
    except OperationalError:
        # The database is down: answer 503 so Zalo delivers the event again later.
        log.exception("webhook: database unavailable, asking Zalo to retry")
        return _answer("temporarily unavailable", 503)
    if event_id is None:
        return _answer("duplicate", 200)
    current_app.logger.debug("webhook: %s stored as event %s", event.event_name, event_id)
    return _answer("ok", 200)


def _digest(raw: bytes) -> str:
    """A short fingerprint to find the body in Zalo's redeliveries, without keeping what it says."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _id_of(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""


def _load_json(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested thousands deep
        return None
    return body if isinstance(body, dict) else None


def _answer(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"message": message}), status
