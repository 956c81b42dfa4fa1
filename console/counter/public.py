"""The page a customer's Zalo QR scanner opens: the claim code, and a button to the OA chat.

It never looks the code up. The code is already in the address the customer scanned, and a page that
answered differently for open, used and unknown codes would let a stranger find open codes by trying them.
Whether the code is still good is told by the bot, where every guess is counted.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, render_template, request
from werkzeug.exceptions import TooManyRequests

from console.throttle import public_pages
from loyalty.claims import CLAIM_CODE_LENGTH
from loyalty.codes import normalize_code
from tichdiem.extensions import get_settings, services

bp = Blueprint("public", __name__)


@bp.get("/c/<code>")
def claim_page(code: str) -> str:
    settings = get_settings()
    if public_pages(services().redis).over_limit(request.remote_addr or "?"):
        raise TooManyRequests("Quá nhiều yêu cầu từ máy này. Vui lòng thử lại sau một phút.")
    oa_link = settings.oa_link
    return render_template(
        "console/claim_public.html",
        code=normalize_code(code)[:CLAIM_CODE_LENGTH],
        shop_name=services().shop_name(),
        oa_link=oa_link,
    )


@bp.get("/r/<code>")
def invite_page(code: str) -> str:
    """A member's invitation link ("giới thiệu" in the chat gives it). Like the claim page it never looks the
    code up (nobody learns whose code is whose); Zalo cannot open the OA chat with a text typed in, so the
    page says what to send."""
    from markupsafe import Markup

    from console.qr import qr_svg
    from loyalty import format as fmt
    from loyalty.program import load_rules
    from tichdiem.extensions import get_session

    settings = get_settings()
    if public_pages(services().redis).over_limit(request.remote_addr or "?"):
        raise TooManyRequests("Quá nhiều yêu cầu từ máy này. Vui lòng thử lại sau một phút.")
    oa_link = settings.oa_link
    bonus = load_rules(get_session()).referee_bonus_points
    return render_template(
        "console/invite_public.html",
        code=normalize_code(code)[:16],
        shop_name=services().shop_name(),
        oa_link=oa_link,
        qr=Markup(qr_svg(oa_link)) if oa_link else None,
        bonus=fmt.points(bonus) if bonus else "",
    )


@bp.get("/privacy")
def privacy_page() -> str:
    """The shop's privacy notice, public (the chat links to it at registration)."""
    from loyalty.privacy import current_notice
    from tichdiem.extensions import get_session

    settings = get_settings()
    version, text = current_notice(get_session(), services().shop_name(), settings.retention_days)
    return render_template("console/privacy_public.html", shop_name=services().shop_name(), version=version, text=text)


@bp.get("/favicon.ico")
def favicon() -> Response:
    return current_app.send_static_file("logo.png")


@bp.get("/zalo_verifier<code>.html")
def zalo_domain_verification(code: str) -> Response:
    """Zalo's domain verification ("Xác thực domain") fetches this file; the owner pastes the code in the
    console (Kết nối Zalo OA) instead of uploading the file Zalo offers."""
    from loyalty.shop import shop_profile
    from tichdiem.extensions import get_session

    profile = shop_profile(get_session())
    expected = profile.zalo_site_verification if profile else ""
    if not expected or not hmac.compare_digest(code.encode(), expected.encode()):
        abort(404)
    page = f'<html><head><meta name="zalo-platform-site-verification" content="{expected}" /></head><body>'
    return Response(f"{page}{expected}</body></html>", mimetype="text/html")
