"""POST /webhooks/zalo: verify, store once, answer 200 well inside Zalo's 2 s.

A plain WSGI endpoint in front of Flask (`ZaloWebhook`), not a Flask view: Zalo's deliveries are the product's
busiest requests, and Flask's request machinery (context, URL matching, session, hooks, jsonify) was about a
third of the webhook process's CPU under wrk, which the request needs none of (issue 16). Everything else in the
app goes to Flask as before; `receive` is the whole of what the endpoint does, without HTTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from flask import Flask
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from jobs.context import Services
from tichdiem.extensions import EXTENSION_KEY
from webhooks.intake import store_event
from webhooks.signature import verify_signature
from zalo.events import MalformedEvent, OaEcho, clean_body, parse_event

log = logging.getLogger(__name__)

PATH = "/webhooks/zalo"
MAX_BODY_BYTES = 256 * 1024  # real events are a few hundred bytes
# The same headers every answer of the app carries (tichdiem.app._security_headers), for a JSON answer.
HEADERS = [
    ("Content-Type", "application/json"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
]
REASONS = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    405: "405 Method Not Allowed",
    413: "413 Request Entity Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}

StartResponse = Callable[..., Any]


class ZaloWebhook:
    """WSGI middleware: POST /webhooks/zalo is answered here; every other request goes on to `app` (Flask)."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "method not allowed", 405, [("Allow", "POST")])
        try:
            raw = _read_body(environ)
        except RequestEntityTooLarge:
            log.warning("webhook: body of %s bytes refused", environ.get("CONTENT_LENGTH") or "too many")
            return _answer(start_response, "body too large", 413)
        services: Services = self.flask_app.extensions[EXTENSION_KEY]  # looked up per request: a test may swap it
        try:
            message, status = receive(services, raw, environ.get("HTTP_X_ZEVENT_SIGNATURE"), environ.get("REMOTE_ADDR"))
        except Exception:  # what Flask would have answered; the traceback goes to the log, not to Zalo
            log.exception("webhook: unexpected error")
            message, status = "internal error", 500
        return _answer(start_response, message, status)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The body, at most MAX_BODY_BYTES (RequestEntityTooLarge beyond). With a Content-Length (Zalo sends one),
    exactly that many bytes straight from the server's stream, which never blocks past the body; without one
    (chunked), through werkzeug's limited stream (its pure-Python reads were ~4% of the request's CPU)."""
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        if int(length) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge()
        body: bytes = environ["wsgi.input"].read(int(length))
        return body
    return get_input_stream(environ, max_content_length=MAX_BODY_BYTES).read()


def receive(services: Services, raw: bytes, signature: str | None, remote_addr: str | None) -> tuple[str, int]:
    """The webhook without HTTP: (message, status) for one delivery's raw body (at most MAX_BODY_BYTES: the
    reading enforces it) and signature header."""
    body = _load_json(raw)
    if body is None:
        log.warning("webhook: malformed JSON refused (%s bytes, sha256 %s)", len(raw), _digest(raw))
        return "malformed JSON", 400
    settings = services.settings
    if not verify_signature(
        raw,
        signature,
        body,
        app_id=settings.zalo_app_id,
        oa_id=settings.zalo_oa_id,
        secrets=settings.webhook_secrets,
    ):
        log.warning("webhook: bad or missing signature for %s from %s", body.get("event_name"), remote_addr)
        return "invalid signature", 401
    try:
        body = clean_body(body)
        event = parse_event(body, oa_id=settings.zalo_oa_id)
    except MalformedEvent as exc:
        # Signed by Zalo but unreadable: acknowledge so Zalo stops retrying, and leave a trace.
        # The body is not logged: a share-info event carries a name and a phone (logs keep no personal data).
        log.error(
            "webhook: signed but malformed event acknowledged (%s; %s bytes, sha256 %s)", exc, len(raw), _digest(raw)
        )
        return "ignored: malformed event", 200
    if isinstance(event, OaEcho):
        return "ignored: echo", 200
    if not _ours(event, body, settings.zalo_app_id, settings.zalo_oa_id):
        log.warning("webhook: event for app %r / OA %r ignored", event.app_id[:40], event.oa_id[:40])
        return "ignored: another app or OA", 200
    return _store(services, event, body)


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


def _store(services: Services, event: Any, body: dict[str, Any]) -> tuple[str, int]:
    try:
        event_id = store_event(services.sessions, event, body)
    except OperationalError:
        # The database is down: answer 503 so Zalo delivers the event again later.
        log.exception("webhook: database unavailable, asking Zalo to retry")
        return "temporarily unavailable", 503
    if event_id is None:
        return "duplicate", 200
    log.debug("webhook: %s stored as event %s", event.event_name, event_id)
    return "ok", 200


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


@lru_cache(maxsize=32)
def _payload(message: str) -> bytes:
    """The answer's JSON, made once per message (a handful of fixed messages)."""
    return json.dumps({"message": message}).encode()


def _answer(
    start_response: StartResponse, message: str, status: int, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    payload = _payload(message)
    start_response(REASONS[status], [*HEADERS, ("Content-Length", str(len(payload))), *(extra or [])])
    return [payload]
