"""Rewards catalog and vouchers: redeem points for a voucher, issue gifts, use and cancel vouchers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.codes import VOUCHER_CODE_LENGTH, normalize_code, unused_code
from loyalty.errors import (
    RewardUnavailable,
    VoucherCancelled,
    VoucherExpired,
    VoucherNotFound,
    VoucherUsed,
    VoucherWrongMember,
)
from loyalty.locks import lock_member
from models import EntryKind, Member, Reward, Tier, Voucher, VoucherStatus, lock_row, rows_updated


@dataclass(frozen=True)
class RedeemResult:
    voucher: Voucher
    points: int
    balance: int
    replayed: bool = False


def cost_for(reward: Reward, tier: Tier | None) -> int:
    """Points the member pays: the tier's discount off the cost, rounded in the shop's favour."""
    discount = tier.reward_discount_pct if tier else 0
    return -(-reward.points_cost * (100 - discount) // 100)


def catalog(session: Session, now: datetime) -> list[Reward]:
    """Rewards a member could see now (active, in their window, in stock), cheapest first."""
    stmt = (
        select(Reward)
        .where(Reward.is_active.is_(True), Reward.points_cost > 0)
        .where(or_(Reward.active_from.is_(None), Reward.active_from <= now))
        .where(or_(Reward.active_until.is_(None), Reward.active_until > now))
        .where(or_(Reward.stock.is_(None), Reward.stock > 0))
        .order_by(Reward.points_cost, Reward.id)
    )
    return list(session.scalars(stmt))


def check_available(session: Session, reward: Reward, member: Member, now: datetime) -> None:
    if not reward.is_active:
        raise RewardUnavailable("inactive")
    if reward.active_from and now < reward.active_from:
        raise RewardUnavailable("not_started")
    if reward.active_until and now >= reward.active_until:
        raise RewardUnavailable("ended")
    if reward.stock is not None and reward.stock <= 0:
        raise RewardUnavailable("out_of_stock")
    if reward.min_tier_id is not None:
        needed = session.get(Tier, reward.min_tier_id)
        current = session.get(Tier, member.tier_id) if member.tier_id else None
        if needed and (current is None or current.threshold < needed.threshold):
            raise RewardUnavailable("tier", needed.name)
    if reward.per_member_limit is not None and _issued_to(session, reward.id, member.id) >= reward.per_member_limit:
        raise RewardUnavailable("limit", str(reward.per_member_limit))


def redeem(
    session: Session, member_id: int, reward_id: int, *, key: str, now: datetime, actor: ledger.Actor = ledger.SYSTEM
) -> RedeemResult:
    """Spend points for a voucher, once per `key`. Raises InsufficientPoints / RewardUnavailable."""
    member = lock_member(session, member_id)
    existing = session.scalar(select(Voucher).where(Voucher.idempotency_key == key))
    if existing is not None:
        return RedeemResult(existing, existing.points_spent, member.points_balance, replayed=True)
    reward = _lock_reward(session, reward_id)
    check_available(session, reward, member, now)
    cost = cost_for(reward, session.get(Tier, member.tier_id) if member.tier_id else None)
    code = _free_code(session)
    entry = ledger.debit(
        session,
        member,
        ledger.Posting(
            kind=EntryKind.REDEEM,
            points=cost,
            key=f"{key}:spend",
            reason=f"đổi {reward.name}",
            actor=actor,
            source_ref=code,
            details={"reward_id": reward.id, "list_cost": reward.points_cost},
        ),
        now=now,
    )
    voucher = _issue(
        session, member, reward, key=key, code=code, now=now, source="redeem", points=cost, entry_id=entry.id
    )
    return RedeemResult(voucher, cost, member.points_balance)


def issue_gift(
    session: Session,
    member_id: int,
    reward_id: int,
    *,
    key: str,
    now: datetime,
    source: str = "gift",
    promised: bool = False,
) -> tuple[Voucher, bool]:
    """A voucher without points (birthday gift, campaign), once per `key`. Returns (voucher, replayed).

    `promised`: already earned (a full stamp card), so an empty stock does not refuse it.
    """
    member = lock_member(session, member_id)
    existing = session.scalar(select(Voucher).where(Voucher.idempotency_key == key))
    if existing is not None:
        return existing, True
    reward = _lock_reward(session, reward_id)
    if reward.stock is not None and reward.stock <= 0 and not promised:
        raise RewardUnavailable("out_of_stock")
    return _issue(
        session, member, reward, key=key, code=_free_code(session), now=now, source=source, points=0, entry_id=None
    ), False


def find_voucher(session: Session, code: str) -> Voucher:
    voucher = session.scalar(select(Voucher).where(Voucher.code == normalize_code(code)))
    if voucher is None:
        raise VoucherNotFound(code)
    return voucher


def use_voucher(
    session: Session,
    code: str,
    *,
    key: str,
    now: datetime,
    used_by: str | None = None,
    store_id: int | None = None,
    member_id: int | None = None,
) -> Voucher:
    """Mark a voucher used at the counter. The same `key` again succeeds without changing anything.

    `member_id`, when the counter knows who is paying, must own the voucher.
    """
    voucher = lock_row(session, Voucher, find_voucher(session, code).id)
    assert voucher is not None
    if voucher.status == VoucherStatus.USED:
        if voucher.used_key == key:
            return voucher
        raise VoucherUsed(voucher.code)
    if voucher.status == VoucherStatus.CANCELLED:
        raise VoucherCancelled(voucher.code)
    if voucher.status == VoucherStatus.EXPIRED or voucher.expires_at <= now:
        raise VoucherExpired(voucher.code)
    if member_id is not None and voucher.member_id != member_id:
        raise VoucherWrongMember(voucher.code)
    voucher.status = VoucherStatus.USED
    voucher.used_at, voucher.used_key, voucher.used_by, voucher.used_store_id = now, key, used_by, store_id
    return voucher


def cancel_voucher(session: Session, voucher_id: int, *, now: datetime, actor: ledger.Actor = ledger.SYSTEM) -> Voucher:
    """Cancel an unused voucher; a redeemed one gives its exact points back. Cancelling twice is a no-op."""
    voucher = session.get(Voucher, voucher_id)
    if voucher is None:
        raise VoucherNotFound(str(voucher_id))
    lock_member(session, voucher.member_id, allow_blocked=True)  # same lock order as redeem: member first
    voucher = lock_row(session, Voucher, voucher_id)
    assert voucher is not None
    if voucher.status == VoucherStatus.CANCELLED:
        return voucher
    if voucher.status == VoucherStatus.USED:
        raise VoucherUsed(voucher.code)
    if voucher.redeem_entry_id is not None:
        ledger.reverse(
            session,
            voucher.redeem_entry_id,
            key=f"cancel-voucher:{voucher.id}",
            now=now,
            actor=actor,
            reason="hủy voucher",
        )
    voucher.status = VoucherStatus.CANCELLED
    voucher.cancelled_at = now
    session.execute(
        update(Reward).where(Reward.id == voucher.reward_id, Reward.stock.is_not(None)).values(stock=Reward.stock + 1)
    )
    return voucher


def expire_vouchers(session: Session, now: datetime) -> int:
    """Flip issued vouchers past their expiry to expired (the counter refuses them either way)."""
    return rows_updated(
        session,
        update(Voucher)
        .where(Voucher.status == VoucherStatus.ISSUED, Voucher.expires_at <= now)
        .values(status=VoucherStatus.EXPIRED),
    )


def unused_vouchers(session: Session, member_id: int, now: datetime) -> list[Voucher]:
    stmt = (
        select(Voucher)
        .where(Voucher.member_id == member_id, Voucher.status == VoucherStatus.ISSUED, Voucher.expires_at > now)
        .order_by(Voucher.expires_at)
    )
    return list(session.scalars(stmt))


def _issue(
    session: Session,
    member: Member,
    reward: Reward,
    *,
    key: str,
    code: str,
    now: datetime,
    source: str,
    points: int,
    entry_id: int | None,
) -> Voucher:
    voucher = Voucher(
        code=code,
        member_id=member.id,
        reward_id=reward.id,
        points_spent=points,
        source=source,
        status=VoucherStatus.ISSUED,
        idempotency_key=key,
        redeem_entry_id=entry_id,
        issued_at=now,
        expires_at=now + timedelta(days=reward.validity_days),
    )
    session.add(voucher)
    if reward.stock:  # a promised voucher past an empty stock leaves it at 0
        reward.stock -= 1
    session.flush()
    return voucher


def _lock_reward(session: Session, reward_id: int) -> Reward:
    reward = lock_row(session, Reward, reward_id)
    if reward is None:
        raise RewardUnavailable("inactive", f"reward {reward_id} not found")
    return reward


def _free_code(session: Session) -> str:
    return unused_code(
        VOUCHER_CODE_LENGTH, lambda code: session.scalar(select(Voucher.id).where(Voucher.code == code)) is not None
    )


def _issued_to(session: Session, reward_id: int, member_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(Voucher)
        .where(
            Voucher.reward_id == reward_id, Voucher.member_id == member_id, Voucher.status != VoucherStatus.CANCELLED
        )
    )
    return int(session.scalar(stmt) or 0)
