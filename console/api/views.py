"""The POS API: JSON over HTTPS with a per-store API key (header X-Api-Key), for the shop's sales software.

Errors are {"error": {"code", "message"}} with stable codes; see GET /api/v1/openapi.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from console.actors import CounterActor
from console.counter.operations import (
    NotAllowed,
    earn_for_bill,
    new_claim,
    pay_with_points,
    refund_points_payment,
    reverse_earn,
    sell_vip,
    use_voucher,
)
from console.counter.operations import reverse_stamps as take_back_stamps
from console.forms import MAX_ID
from console.messages import message
from console.qr import qr_png, qr_svg
from console.staff import verify_api_key
from console.throttle import code_guesses
from loyalty import errors, vip
from loyalty import rewards as reward_rules
from loyalty.bills import record_walk_in
from loyalty.cards import InvalidCard, member_from_token
from loyalty.claims import find_claim
from loyalty.codes import pretty_voucher_code
from loyalty.errors import PaymentRefused
from loyalty.members import find_by_phone
from loyalty.phones import normalize_phone
from loyalty.program import load_rules
from models import ApiKey, EntryKind, LedgerEntry, Member, Reward, Stamp, Tier, VipMembership, utcnow
from tichdiem.extensions import get_session, get_settings, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])

# Domain error -> (HTTP status, stable code). The code is what integrations switch on.
ERRORS: dict[type[Exception], tuple[int, str]] = {
    errors.MemberNotFound: (404, "member_not_found"),
    errors.MemberBlocked: (403, "member_blocked"),
    errors.InvalidAmount: (422, "invalid_amount"),
    errors.InsufficientPoints: (409, "insufficient_points"),
    errors.AlreadyReversed: (409, "already_reversed"),
    errors.NotReversible: (409, "not_reversible"),
    errors.DuplicateBill: (409, "duplicate_bill"),
    errors.KeyReused: (409, "idempotency_conflict"),
    errors.VoucherNotFound: (404, "voucher_not_found"),
    errors.VoucherUsed: (409, "voucher_used"),
    errors.VoucherCancelled: (409, "voucher_cancelled"),
    errors.VoucherExpired: (422, "voucher_expired"),
    errors.VoucherWrongMember: (422, "voucher_wrong_member"),
    InvalidCard: (404, "member_not_found"),
    NotAllowed: (403, "forbidden"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    get_session().rollback()
    return jsonify({"error": {"code": exc.code, "message": exc.message}}), exc.status


@bp.errorhandler(errors.LoyaltyError)
def _domain_error(exc: errors.LoyaltyError) -> tuple[Response, int]:
    get_session().rollback()
    status, code = next(((s, c) for cls, (s, c) in ERRORS.items() if isinstance(exc, cls)), (422, exc.code))
    return jsonify({"error": {"code": code, "message": str(exc) or code}}), status


API_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 429: "too_many_requests"}


def api_http_error(exc: HTTPException) -> Any:
    """Under /api/ even an unknown path or method answers in the API's JSON error shape (console.errors)."""
    code = API_ERROR_CODES.get(exc.code or 500, "bad_request" if (exc.code or 500) < 500 else "server_error")
    return jsonify({"error": {"code": code, "message": exc.description}}), exc.code


def api_key_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        secret = request.headers.get("X-Api-Key", "")
        key = verify_api_key(get_session(), secret, utcnow()) if secret else None
        if key is None:
            raise ApiError(401, "unauthorized", "missing or invalid X-Api-Key")
        g.api_key = key
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@bp.get("/openapi.json")
def openapi() -> Response:
    from console.api.openapi import spec

    return jsonify(spec(get_settings().public_url))


@bp.get("/members/lookup")
@api_key_required
def lookup_member() -> Response:
    member = _member_from(request.args)
    get_session().commit()  # last_used_at of the key
    return jsonify({"member": _member_json(member)})


@bp.post("/earns")
@api_key_required
def earn() -> tuple[Response, int]:
    body = _json()
    member = _member_from(body)
    amount = _int(body, "amount")
    key = _idempotency_key()
    db = get_session()
    existing = db.scalar(_entry_by_key(key))
    if existing is not None and (existing.member_id != member.id or existing.bill_amount != amount):
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different earn")
    result = earn_for_bill(
        db,
        member.id,
        amount,
        key=key,
        by=_actor(),
        rules=load_rules(db),
        tz=get_settings().tz,
        now=utcnow(),
        bill_ref=_str(body, "bill_ref"),
        channel="pos",
        new_bill=body.get("new_bill") is True,
        items=_items(body),
    )
    db.commit()
    db.refresh(member)
    payload = {
        "entry_id": result.entry.id if result.entry else None,
        "points": result.points,
        "stamps": [p.as_json() for p in result.stamps],
        "balance": result.balance,
        "replayed": result.replayed,
        "member": _member_json(member),
        "limited_by": result.quote.limited_by if result.quote else None,
    }
    return jsonify(payload), 200 if result.replayed else 201


@bp.post("/earns/<int:entry_id>/reverse")
@api_key_required
def reverse(entry_id: int) -> tuple[Response, int]:
    return _undo(entry_id, None, reverse_earn, "no earn with this id for this store")


@bp.post("/stamps/<int:stamp_id>/reverse")
@api_key_required
def reverse_stamps(stamp_id: int) -> tuple[Response, int]:
    """A refunded bill that gave stamps and no points (a refund with points goes through its earn)."""
    db = get_session()
    row = db.get(Stamp, stamp_id)
    if row is None or row.store_id != g.api_key.store_id:
        raise ApiError(404, "stamp_not_found", "no stamp with this id for this store")
    unstamped = take_back_stamps(db, stamp_id, by=_actor(owner=True), now=utcnow())
    db.commit()
    taken = [{"stamp_card_id": u.card.id, "taken": u.taken, "kept": u.kept} for u in unstamped]
    cancelled = [u.voucher_cancelled.code for u in unstamped if u.voucher_cancelled]
    return jsonify({"stamps": taken, "vouchers_cancelled": cancelled}), 200


@bp.post("/bills")
@api_key_required
def walk_in_bill() -> tuple[Response, int]:
    """A bill of a customer who is not a member (no points): the owner's results count every bill."""
    body = _json()
    amount = _int(body, "amount")
    db = get_session()
    bill, replayed = record_walk_in(
        db,
        amount,
        key=_idempotency_key(),
        now=utcnow(),
        store_id=g.api_key.store_id,
        bill_ref=_str(body, "bill_ref"),
        channel="pos",
        by=_actor().actor,
    )
    if replayed and bill.amount != amount:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different bill")
    db.commit()
    return jsonify({"bill_id": bill.id, "amount": bill.amount, "replayed": replayed}), 200 if replayed else 201


@bp.get("/vip-plans")
@api_key_required
def vip_plans() -> Response:
    plans = vip.active_plans(get_session())
    tiers = {t.id: t.name for t in get_session().scalars(select(Tier))}
    return jsonify(
        {
            "plans": [
                {
                    "id": p.id,
                    "name": p.name,
                    "price": p.price,
                    "duration_days": p.duration_days,
                    "tier": tiers[p.tier_id],
                }
                for p in plans
            ]
        }
    )


@bp.post("/vip-memberships")
@api_key_required
def sell_vip_membership() -> tuple[Response, int]:
    """The POS sold a paid membership: the period and the tier held (200 with the first answer on a replay)."""
    body = _json()
    member = _member_from(body)
    plan_id = _int(body, "plan_id")
    key = _idempotency_key()
    db = get_session()
    existing = db.scalar(select(VipMembership).where(VipMembership.idempotency_key == key))
    if existing is not None and (existing.member_id != member.id or existing.plan_id != plan_id):
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different sale")
    sale = sell_vip(
        db,
        member.id,
        plan_id,
        key=key,
        by=_actor(),
        now=utcnow(),
        tz=get_settings().tz,
        bill_ref=_str(body, "bill_ref"),
    )
    db.commit()
    db.refresh(member)
    membership = sale.membership
    payload = {
        "membership_id": membership.id,
        "plan": sale.plan.name,
        "price": membership.price,
        "tier": sale.tier.name,
        "starts_at": membership.starts_at.isoformat(),
        "ends_at": membership.ends_at.isoformat(),
        "replayed": sale.replayed,
        "member": _member_json(member),
    }
    return jsonify(payload), 200 if sale.replayed else 201


@bp.post("/point-payments")
@api_key_required
def point_payment() -> tuple[Response, int]:
    """Points pay part of a bill at the program's point value, within the owner's limits; once per key."""
    body = _json()
    member = _member_from(body)
    amount, points = _int(body, "amount"), _int(body, "points")
    key = f"pos-pay:{_idempotency_key()}"
    db = get_session()
    existing = db.scalar(_entry_by_key(key))
    if existing is not None and (existing.member_id != member.id or -existing.points != points):
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different payment")
    result = pay_with_points(
        db,
        member.id,
        points,
        amount,
        key=key,
        by=_actor(),
        rules=load_rules(db),
        now=utcnow(),
        bill_ref=_str(body, "bill_ref"),
        channel="pos",
    )
    db.commit()
    db.refresh(member)
    payload = {
        "entry_id": result.entry.id,
        "points": result.points,
        "vnd": result.vnd,
        "to_pay": amount - result.vnd,
        "balance": result.balance,
        "replayed": result.replayed,
        "member": _member_json(member),
    }
    return jsonify(payload), 200 if result.replayed else 201


@bp.post("/point-payments/<int:entry_id>/refund")
@api_key_required
def refund_point_payment(entry_id: int) -> tuple[Response, int]:
    return _undo(entry_id, EntryKind.PAY, refund_points_payment, "no points payment with this id for this store")


def _undo(entry_id: int, kind: str | None, undo: Callable[..., LedgerEntry], not_found: str) -> tuple[Response, int]:
    """A refund through the POS: the store's own entry (of `kind`, if given) reversed once, as an owner would."""
    db = get_session()
    entry = db.get(LedgerEntry, entry_id)
    if entry is None or entry.store_id != g.api_key.store_id or (kind is not None and entry.kind != kind):
        raise ApiError(404, "entry_not_found", not_found)
    reversal = undo(db, entry_id, by=_actor(owner=True), now=utcnow())
    db.commit()
    member = db.get(Member, entry.member_id)
    assert member is not None
    return jsonify({"reversal_entry_id": reversal.id, "points": reversal.points, "balance": member.points_balance}), 200


@bp.errorhandler(PaymentRefused)
def _payment_refused(exc: PaymentRefused) -> tuple[Response, int]:
    """Why points cannot pay this bill, with the figure the POS can show (the most points, or the minimum)."""
    get_session().rollback()
    error = {"code": "payment_refused", "reason": exc.reason, "limit": exc.limit, "message": message(exc)}
    return jsonify({"error": error}), 422


@bp.post("/claims")
@api_key_required
def create_claim() -> tuple[Response, int]:
    body = _json()
    db = get_session()
    key = _idempotency_key()
    claim = new_claim(
        db,
        _int(body, "amount"),
        key=key,
        by=_actor(),
        now=utcnow(),
        bill_ref=_str(body, "bill_ref"),
    )
    db.commit()
    return jsonify(_claim_json(claim.code, claim.amount, claim.expires_at.isoformat())), 201


@bp.get("/claims/<code>/qr.<fmt>")
@api_key_required
def claim_qr(code: str, fmt: str) -> Response:
    throttle, who = code_guesses(services().redis), f"api:{g.api_key.id}"
    if throttle.blocked(who):
        raise ApiError(429, "too_many_attempts", "too many unknown codes; try again in 10 minutes")
    claim = find_claim(get_session(), code)
    if claim is None or claim.store_id != g.api_key.store_id or fmt not in ("png", "svg"):
        throttle.failed(who)
        raise ApiError(404, "claim_not_found", "no such claim for this store")
    url = _claim_url(claim.code)
    if fmt == "png":
        return Response(qr_png(url), mimetype="image/png")
    return Response(qr_svg(url), mimetype="image/svg+xml")


@bp.get("/vouchers/<code>")
@api_key_required
def voucher(code: str) -> Response:
    db = get_session()
    found = _find_voucher_throttled(code)
    now = utcnow()
    usable = found.status == "issued" and found.expires_at > now
    reward = db.get(Reward, found.reward_id)
    member = db.get(Member, found.member_id)
    return jsonify(
        {
            "voucher": {
                "code": pretty_voucher_code(found.code),
                "status": found.status if found.status != "issued" or usable else "expired",
                "usable": usable,
                "reward": {"id": reward.id, "name": reward.name} if reward else None,
                "member": _member_json(member) if member else None,
                "expires_at": found.expires_at.isoformat(),
            }
        }
    )


@bp.post("/vouchers/<code>/redeem")
@api_key_required
def redeem_voucher(code: str) -> Response:
    body = _json(optional=True)
    db = get_session()
    member_id = body.get("member_id")
    _find_voucher_throttled(code)
    used = use_voucher(
        db,
        code,
        key=_idempotency_key(),
        by=_actor(),
        now=utcnow(),
        tz=get_settings().tz,
        member_id=_int(body, "member_id") if member_id is not None else None,
    )
    db.commit()
    return jsonify(
        {
            "voucher": {
                "code": pretty_voucher_code(used.code),
                "status": used.status,
                "used_at": used.used_at.isoformat() if used.used_at else None,
            }
        }
    )


# --- helpers -------------------------------------------------------------------------------------------


def _find_voucher_throttled(code: str) -> Any:
    throttle, who = code_guesses(services().redis), f"api:{g.api_key.id}"
    if throttle.blocked(who):
        raise ApiError(429, "too_many_attempts", "too many unknown codes; try again in 10 minutes")
    try:
        return reward_rules.find_voucher(get_session(), code)
    except errors.VoucherNotFound:
        throttle.failed(who)
        raise


def _actor(owner: bool = False) -> CounterActor:
    key: ApiKey = g.api_key
    return CounterActor(actor=f"api:{key.id}", store_id=key.store_id, is_owner=owner, ip=request.remote_addr)


def _member_from(source: Any) -> Member:
    db = get_session()
    if source.get("member_id") is not None:
        member = db.get(Member, _int(source, "member_id"))
    elif source.get("card"):
        member = member_from_token(db, str(source["card"]), get_settings().secret_key)
    elif source.get("phone"):
        phone = normalize_phone(str(source["phone"]))
        if phone is None:
            raise ApiError(422, "invalid_phone", "phone is not a Vietnamese phone number")
        member = find_by_phone(db, phone)
    else:
        raise ApiError(422, "validation_error", "give member_id, card or phone")
    if member is None:
        raise errors.MemberNotFound("no member matches")
    return member


def _member_json(member: Member) -> dict[str, Any]:
    tier = get_session().get(Tier, member.tier_id) if member.tier_id else None
    return {
        "id": member.id,
        "code": member.code,
        "name": member.name,
        "phone": member.phone,
        "tier": tier.name if tier else None,
        "points_balance": member.points_balance,
        "status": member.status,
    }


def _claim_json(code: str, amount: int, expires_at: str) -> dict[str, Any]:
    return {
        "claim": {
            "code": code,
            "amount": amount,
            "expires_at": expires_at,
            "url": _claim_url(code),
            "qr_png": url_for("api.claim_qr", code=code, fmt="png", _external=True),
            "qr_svg": url_for("api.claim_qr", code=code, fmt="svg", _external=True),
            "chat_text": f"#{code}",
        }
    }


def _claim_url(code: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/c/{code}"


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 100:
        raise ApiError(422, "missing_idempotency_key", "send an Idempotency-Key header (1-100 characters)")
    return f"pos:{g.api_key.store_id}:{key}"


def _entry_by_key(key: str) -> Any:
    from sqlalchemy import select

    return select(LedgerEntry).where(LedgerEntry.idempotency_key == key)


def _json(optional: bool = False) -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: Flask's silent= only covers ValueError
        body = None
    if body is None and optional and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    try:  # text the database cannot store: NUL (json writes it as \u0000), or a lone surrogate (not UTF-8)
        storable = "\\u0000" not in json.dumps(body, ensure_ascii=False).encode().decode()
    except (UnicodeEncodeError, RecursionError):
        storable = False
    if not storable:
        raise ApiError(400, "bad_request", "the body holds characters that are not valid text")
    return body


def _int(body: Any, name: str) -> int:
    """A whole number a BIGINT can hold, as a JSON integer or a string of digits; anything else is a 422.

    Not int(value): JSON's 1e400 and Infinity are floats int() cannot convert, True is an int, and 2**70
    would reach the database, which cannot hold it. Whether the number makes sense is the domain's call."""
    value = body.get(name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 20:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_ID <= value <= MAX_ID:
        raise ApiError(422, "validation_error", f"{name} must be a whole number")
    return value


def _items(body: dict[str, Any]) -> dict[str, int] | None:
    """{"Cà phê": 2, ...}: how many items of each product group the bill holds, for the group stamp cards."""
    items = body.get("items")
    if items is None:
        return None
    if not isinstance(items, dict) or len(items) > 50:
        raise ApiError(422, "validation_error", "items must be an object of product group -> quantity (50 at most)")
    for name, quantity in items.items():
        if len(name) > 60 or isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= 1000:
            raise ApiError(422, "validation_error", "each item is a product group name -> a quantity of 0-1000")
    return items


def _str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return str(value)[:120] if value not in (None, "") else None
