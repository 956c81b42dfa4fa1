"""GET /healthz: database and queue state, for load balancers and operators."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from models import EventStatus, OutboxMessage, OutboxStatus, WebhookEvent
from tichdiem.extensions import get_session, services

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """ok (200) or degraded (503) for anyone; the details (backend, queue mode, counts of failures) only with
    `Authorization: Bearer <HEALTH_TOKEN>` or a staff session: they tell a stranger where to push."""
    database = _database_state()
    queue = _queue_state()
    ok = database["ok"] and queue["ok"]
    body: dict[str, Any] = {"status": "ok" if ok else "degraded"}
    if _may_see_details():
        body |= {"database": database, "queue": queue}
    return jsonify(body), 200 if ok else 503


def _may_see_details() -> bool:
    token = services().settings.health_token
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    from console.auth import load_staff  # the console's login; imported here, health is wiring

    return load_staff() is not None


def _database_state() -> dict[str, Any]:
    session = get_session()
    try:
        session.execute(text("SELECT 1"))
        failed = session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.FAILED))
        waiting = session.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.RECEIVED))
        unsent_rows = session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.status.in_([OutboxStatus.FAILED, OutboxStatus.UNKNOWN]))
            .group_by(OutboxMessage.status)
        ).all()
        unsent = {status: int(count) for status, count in unsent_rows}
        return {
            "ok": True,
            "backend": session.get_bind().dialect.name,
            "events_failed": failed,
            "events_waiting": waiting,
            "messages_failed": unsent.get(OutboxStatus.FAILED, 0),
            "messages_unknown": unsent.get(OutboxStatus.UNKNOWN, 0),  # interrupted sends, never repeated
        }
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("healthz: database check failed: %s", exc)
        return {"ok": False, "error": type(exc).__name__}


def _queue_state() -> dict[str, Any]:
    svc = services()
    mode = "embedded" if svc.settings.embedded_queue else "redis"
    try:
        svc.redis.ping()
        failed = FailedJobRegistry(queue=svc.queue).count
        return {"ok": True, "mode": mode, "queued": svc.queue.count, "failed_jobs": failed}
    except RedisError as exc:
        log.error("healthz: queue check failed: %s", exc)
        return {"ok": False, "mode": mode, "error": type(exc).__name__}
