"""GET /healthz: is the service doing its work (jobs/health.py), for monitors and operators."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from jobs.health import check
from tichdiem.extensions import get_session, services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """ok (200) or degraded (503) for anyone; the details (backend, queue mode, counts, problems) only with
    `Authorization: Bearer <HEALTH_TOKEN>` or a staff session: they tell a stranger where to push."""
    health = check(services(), get_session())
    body: dict[str, Any] = {"status": "ok" if health.ok else "degraded"}
    if _may_see_details():
        body |= {"database": health.database, "queue": health.queue, "zalo": health.zalo, "problems": health.problems}
    return jsonify(body), 200 if health.ok else 503


def _may_see_details() -> bool:
    token = services().settings.health_token
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    from console.auth import load_staff  # the console's login; imported here, health is wiring

    return load_staff() is not None
