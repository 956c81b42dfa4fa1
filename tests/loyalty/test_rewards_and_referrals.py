from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import history
from loyalty import earning, referrals, rewards
from loyalty.codes import ALPHABET, normalize_code, pretty_voucher_code
from loyalty.errors import (
    InsufficientPoints,
    ReferralRefused,
    RewardUnavailable,
    VoucherCancelled,
    VoucherExpired,
    VoucherNotFound,
    VoucherUsed,
    VoucherWrongMember,
)
from models import EntryKind, LedgerEntry, Member, Reward, Voucher, VoucherStatus
from tests.loyalty.conftest import NOW, RULES, TZ, assert_consistent, give, new_member


def redeem(db: Session, member: Member, reward: Reward, key: str, when=NOW) -> rewards.RedeemResult:
    result = rewards.redeem(db, member.id, reward.id, key=key, now=when)
    db.commit()
    return result


def test_redeem_spends_points_and_issues_a_voucher(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 250, "g")
    coffee = shop["rewards"]["Cà phê sữa đá"]
    result = redeem(db, member, coffee, "r1")
    voucher = result.voucher
    assert (result.points, result.balance) == (100, 150)
    assert voucher.status == VoucherStatus.ISSUED and voucher.points_spent == 100
    assert voucher.expires_at == NOW + timedelta(days=30)
    assert len(voucher.code) == 8 and set(voucher.code) <= set(ALPHABET)
    assert not set(voucher.code) & set("IO01")
    entry = db.get(LedgerEntry, voucher.redeem_entry_id)
    assert entry.kind == EntryKind.REDEEM and entry.source_ref == voucher.code
    assert history.describe(entry, TZ) == "−100 điểm — đổi Cà phê sữa đá — 23/11"
    assert_consistent(db, member.id)


def test_double_click_redeems_once(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 250, "g")
    first = redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "click-1")
    again = redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "click-1")
    assert again.replayed and again.voucher.id == first.voucher.id
    assert db.get(Member, member.id).points_balance == 150


def test_not_enough_points(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 99, "g")
    with pytest.raises(InsufficientPoints):
        redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "r")
    db.rollback()
    assert db.scalars(select(Voucher)).all() == []


def test_diamond_pays_five_percent_fewer_points(db: Session, shop) -> None:
    member = new_member(db)
    db.get(Member, member.id).tier_id = shop["tiers"]["Kim cương"].id
    db.commit()
    give(db, member, 1000, "g")
    assert redeem(db, member, shop["rewards"]["Voucher 100.000đ"], "r").points == 950
    assert rewards.cost_for(shop["rewards"]["Bánh ngọt"], shop["tiers"]["Kim cương"]) == 57  # 57 not 56.xx


def test_stock_limit_and_window(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 1000, "g")
    cake = shop["rewards"]["Bánh ngọt"]
    redeem(db, member, cake, "a")
    redeem(db, member, cake, "b")
    with pytest.raises(RewardUnavailable) as raised:
        redeem(db, member, cake, "c")
    assert raised.value.reason == "out_of_stock"
    db.rollback()
    big = shop["rewards"]["Voucher 100.000đ"]
    give(db, member, 2000, "g2")
    redeem(db, member, big, "big1")
    with pytest.raises(RewardUnavailable) as raised:
        redeem(db, member, big, "big2")
    assert raised.value.reason == "limit"
    db.rollback()
    coffee = db.get(Reward, shop["rewards"]["Cà phê sữa đá"].id)
    coffee.active_until = NOW
    db.commit()
    with pytest.raises(RewardUnavailable) as raised:
        redeem(db, member, coffee, "late")
    assert raised.value.reason == "ended"
    assert [r.name for r in rewards.catalog(db, NOW)] == ["Voucher 100.000đ"]


def test_minimum_tier(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 500, "g")
    coffee = db.get(Reward, shop["rewards"]["Cà phê sữa đá"].id)
    coffee.min_tier_id = shop["tiers"]["Vàng"].id
    db.commit()
    with pytest.raises(RewardUnavailable) as raised:
        redeem(db, member, coffee, "r")
    assert (raised.value.reason, raised.value.detail) == ("tier", "Vàng")


def test_use_voucher_once_idempotently(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 250, "g")
    voucher = redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "r").voucher
    typed = pretty_voucher_code(voucher.code).lower()  # "abcd-efgh" as a cashier might type it
    used = rewards.use_voucher(db, typed, key="use-1", now=NOW, used_by="cashier-1", member_id=member.id)
    db.commit()
    assert used.status == VoucherStatus.USED and used.used_by == "cashier-1"
    assert rewards.use_voucher(db, voucher.code, key="use-1", now=NOW).id == voucher.id  # double click
    with pytest.raises(VoucherUsed):
        rewards.use_voucher(db, voucher.code, key="use-2", now=NOW)


def test_voucher_refusals(db: Session, shop) -> None:
    alice, bob = new_member(db, "Alice"), new_member(db, "Bob")
    give(db, alice, 500, "g")
    coffee = shop["rewards"]["Cà phê sữa đá"]
    v1 = redeem(db, alice, coffee, "r1").voucher
    with pytest.raises(VoucherExpired):
        rewards.use_voucher(db, v1.code, key="u", now=NOW + timedelta(days=31))
    with pytest.raises(VoucherWrongMember):
        rewards.use_voucher(db, v1.code, key="u", now=NOW, member_id=bob.id)
    with pytest.raises(VoucherNotFound):
        rewards.use_voucher(db, "ZZZZ-ZZZZ", key="u", now=NOW)
    rewards.cancel_voucher(db, v1.id, now=NOW)
    db.commit()
    with pytest.raises(VoucherCancelled):
        rewards.use_voucher(db, v1.code, key="u", now=NOW)


def test_cancel_refunds_exact_points_and_stock(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 100, "g")
    cake = shop["rewards"]["Bánh ngọt"]
    voucher = redeem(db, member, cake, "r").voucher
    assert db.get(Reward, cake.id).stock == 1
    rewards.cancel_voucher(db, voucher.id, now=NOW)
    rewards.cancel_voucher(db, voucher.id, now=NOW)  # twice: no second refund
    db.commit()
    db.expire_all()
    assert db.get(Member, member.id).points_balance == 100
    assert db.get(Reward, cake.id).stock == 2
    assert_consistent(db, member.id)


def test_used_voucher_cannot_be_cancelled(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 100, "g")
    voucher = redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "r").voucher
    rewards.use_voucher(db, voucher.code, key="u", now=NOW)
    with pytest.raises(VoucherUsed):
        rewards.cancel_voucher(db, voucher.id, now=NOW)


def test_gift_voucher_without_points(db: Session, shop) -> None:
    member = new_member(db)
    voucher, replayed = rewards.issue_gift(
        db, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="birthday:2026:1", now=NOW, source="birthday"
    )
    again, replayed_again = rewards.issue_gift(
        db, member.id, shop["rewards"]["Cà phê sữa đá"].id, key="birthday:2026:1", now=NOW, source="birthday"
    )
    db.commit()
    assert (replayed, replayed_again, again.id) == (False, True, voucher.id)
    assert voucher.points_spent == 0 and voucher.source == "birthday"
    assert [v.id for v in rewards.unused_vouchers(db, member.id, NOW)] == [voucher.id]
    rewards.cancel_voucher(db, voucher.id, now=NOW)  # nothing to refund
    db.commit()
    assert db.get(Member, member.id).points_balance == 0


def test_expire_vouchers(db: Session, shop) -> None:
    member = new_member(db)
    give(db, member, 100, "g")
    voucher = redeem(db, member, shop["rewards"]["Cà phê sữa đá"], "r").voucher
    assert rewards.expire_vouchers(db, NOW + timedelta(days=29)) == 0
    assert rewards.expire_vouchers(db, NOW + timedelta(days=31)) == 1
    db.commit()
    assert db.get(Voucher, voucher.id).status == VoucherStatus.EXPIRED


def test_code_normalisation() -> None:
    assert normalize_code(" abcd-efgh\n") == "ABCDEFGH"
    assert pretty_voucher_code("ABCDEFGH") == "ABCD-EFGH"


# --- referrals --------------------------------------------------------------------------------------


def earn(db: Session, member: Member, amount: int, key: str, rules=RULES):
    result = earning.earn(db, member.id, amount, key=key, rules=rules, tz=TZ, now=NOW)
    db.commit()
    return result


def test_referrer_gets_fixed_bonus_once_on_first_purchase(db: Session, shop) -> None:
    referrer, newbie = new_member(db, "An"), new_member(db, "Bình")
    assert referrals.link_referral(db, newbie, referrer.code.lower()).id == referrer.id
    db.commit()
    first = earn(db, newbie, 100_000, "b1")
    assert first.referral_entry is not None and first.referral_entry.points == 50
    assert earn(db, newbie, 100_000, "b2").referral_entry is None
    db.expire_all()
    assert db.get(Member, referrer.id).points_balance == 50
    entry = first.referral_entry
    assert history.describe(entry, TZ) == "+50 điểm — thưởng giới thiệu Bình — 23/11"
    assert_consistent(db, referrer.id)


def test_percent_bonus_of_first_bill(db: Session, shop) -> None:
    from dataclasses import replace

    rules = replace(RULES, referral_bonus_kind="percent", referral_bonus_value=5)
    referrer, newbie = new_member(db, "An"), new_member(db, "Bình")
    referrals.link_referral(db, newbie, referrer.code)
    db.commit()
    assert earn(db, newbie, 400_000, "b1", rules=rules).referral_entry.points == 20  # 5% of 400.000đ / 1.000đ


@pytest.mark.parametrize("case", ["self", "loop", "already_referred", "already_purchased", "unknown_code"])
def test_referral_refusals(db: Session, shop, case: str) -> None:
    a, b, c = new_member(db, "A"), new_member(db, "B"), new_member(db, "C")
    code = {"self": a.code, "unknown_code": "NOPE99"}.get(case, b.code)
    if case == "loop":
        referrals.link_referral(db, b, a.code)  # b was referred by a; a cannot now be referred by b
    if case == "already_referred":
        referrals.link_referral(db, a, c.code)
    if case == "already_purchased":
        earn(db, a, 100_000, "k")
    db.commit()
    with pytest.raises(ReferralRefused) as raised:
        referrals.link_referral(db, a, code)
    assert raised.value.reason == case


def test_unused_code_retries_taken_codes_and_gives_up() -> None:
    from loyalty.codes import unused_code

    seen: list[str] = []

    def taken(code: str) -> bool:
        seen.append(code)
        return len(seen) < 3  # the first two are taken

    code = unused_code(6, taken)
    assert code == seen[-1] and len(seen) == 3 and len(code) == 6
    with pytest.raises(RuntimeError):
        unused_code(6, lambda code: True, attempts=4)
