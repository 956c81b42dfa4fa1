"""Recording a bill of a customer who is not a member (no points, no chat): once per key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.earning import MAX_BILL_AMOUNT
from loyalty.errors import InvalidAmount
from models import WalkInBill, insert_ignore


def record_walk_in(
    session: Session,
    amount: int,
    *,
    key: str,
    now: datetime,
    store_id: int | None,
    bill_ref: str | None = None,
    channel: str = "counter",
    by: str | None = None,
) -> tuple[WalkInBill, bool]:
    """The bill, and whether it was recorded before under this key (a retried POS call, a double click)."""
    if not 0 < amount <= MAX_BILL_AMOUNT:
        raise InvalidAmount(f"bill amount {amount}")
    values = {
        "store_id": store_id,
        "amount": amount,
        "bill_ref": bill_ref,
        "channel": channel,
        "idempotency_key": key,
        "recorded_by": by,
        "created_at": now,
    }
    new_id = insert_ignore(session, WalkInBill, values, ["idempotency_key"])  # two racing requests: one row
    bill = session.scalars(select(WalkInBill).where(WalkInBill.idempotency_key == key)).one()
    return bill, new_id is None
