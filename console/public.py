"""The page a customer's Zalo QR scanner opens: the claim code, and a button to the OA chat."""

from __future__ import annotations

from flask import Blueprint, render_template

from loyalty.claims import find_claim
from models import ClaimStatus, utcnow
from tichdiem.extensions import get_session, get_settings

bp = Blueprint("public", __name__)


@bp.get("/c/<code>")
def claim_page(code: str) -> tuple[str, int]:
    claim = find_claim(get_session(), code)
    settings = get_settings()
    state = "missing"
    if claim is not None:
        state = "open" if claim.status == ClaimStatus.OPEN and claim.expires_at > utcnow() else "closed"
    oa_link = f"https://zalo.me/{settings.zalo_oa_id}" if settings.zalo_oa_id else ""
    return render_template(
        "console/claim_public.html",
        claim=claim,
        state=state,
        shop_name=settings.shop_name,
        oa_link=oa_link,
        tz=settings.tz,
    ), 200 if claim else 404
