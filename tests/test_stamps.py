"""Stamp cards ("mua 5 ly tặng 1", issue 17) through their real paths: the counter's one scan, a counter claim in
the chat, the POS API, the "tem" command, refunds, lapses, and the console page; retries and double clicks
never stamp or issue twice. Both databases."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.card_image import StampFace, render_stamp_card
from console.actors import CounterActor
from console.counter.operations import earn_for_bill, reverse_earn, reverse_stamps
from console.staff import create_api_key, create_staff
from loyalty import earning, rewards, stamps
from loyalty.claims import create_claim
from loyalty.errors import DuplicateBill
from loyalty.members import create_member
from loyalty.program import ProgramRules, Rate, load_rules, save_rules
from models import (
    AuditLog,
    Member,
    MemberStampCard,
    Reward,
    Stamp,
    StampCard,
    StampKind,
    Store,
    Voucher,
    VoucherStatus,
)
from models.stamps import StampAppendOnly
from tests.console_support import login, text_of
from tests.helpers import Chat, ZaloFake, run_jobs, seed_shop

UID = "8958041078911298472"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
RULES = ProgramRules(referral_bonus_kind="off")
OWNER = CounterActor(actor="staff:1", staff_id=None, store_id=None, is_owner=True, ip=None)


@pytest.fixture
def shop(session: Session) -> dict:
    shop = seed_shop(session)
    create_staff(session, username="chu", password="mat-khau-123", role="owner")
    q1 = shop["stores"]["Q1"]
    create_staff(session, username="thu-ngan", password="mat-khau-123", role="cashier", store_id=q1.id)
    session.commit()
    return shop


@pytest.fixture
def coffee_card(session: Session, shop: dict) -> StampCard:
    """Every bill from 30.000đ gives one stamp; five give a free coffee."""
    card = StampCard(
        name="Mua 5 ly tặng 1", stamps_needed=5, reward_id=shop["rewards"]["Cà phê sữa đá"].id, min_bill_amount=30_000
    )
    session.add(card)
    session.commit()
    return card


@pytest.fixture
def lan(session: Session, shop: dict) -> Member:
    member = create_member(session, now=T0, name="Lan", phone="84912345678", zalo_user_id=UID)
    session.commit()
    return member


def bill(session: Session, member: Member, key: str, amount: int = 50_000, **kw: object) -> earning.EarnResult:
    at = kw.pop("now", T0)
    result = earning.earn(session, member.id, amount, key=key, rules=RULES, tz=TZ, now=at, **kw)  # type: ignore[arg-type]
    session.commit()
    return result


def progress(session: Session, member: Member, card: StampCard) -> MemberStampCard:
    session.expire_all()
    return session.scalars(
        select(MemberStampCard).where(MemberStampCard.member_id == member.id, MemberStampCard.stamp_card_id == card.id)
    ).one()


# --- the domain ----------------------------------------------------------------------------------------


def test_five_bills_fill_the_card_once_and_a_new_card_starts(session: Session, coffee_card, lan) -> None:
    for n in range(4):
        result = bill(session, lan, f"b{n}", now=T0 + timedelta(days=n))
        assert [(p.added, p.stamps, p.voucher) for p in result.stamps] == [(1, n + 1, None)]
    fifth = bill(session, lan, "b4", now=T0 + timedelta(days=4))
    (filled,) = fifth.stamps
    assert filled.added == 1 and filled.stamps == 0 and filled.voucher is not None
    assert filled.voucher.source == "stamps" and filled.voucher.points_spent == 0
    again = bill(session, lan, "b4", now=T0 + timedelta(days=5))  # a retried request: nothing more
    assert again.replayed and again.stamps[0].voucher.id == filled.voucher.id  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert session.scalar(select(func.count()).select_from(Stamp)) == 5
    row = progress(session, lan, coffee_card)
    assert (row.stamps, row.cards_completed, row.started_at) == (0, 1, None)
    sixth = bill(session, lan, "b5", now=T0 + timedelta(days=6))
    assert sixth.stamps[0].stamps == 1  # the next card
    assert lan.points_balance == 30  # points as usual beside the stamps: 6 bills x 5 points


def test_a_bill_under_the_minimum_or_inside_the_cooldown_gets_no_stamp(
    session: Session, coffee_card: StampCard, lan
) -> None:
    coffee_card.min_hours_between = 4
    session.commit()
    small = bill(session, lan, "small", amount=20_000)
    assert [(p.added, p.skipped) for p in small.stamps] == [(0, "min_bill")]
    bill(session, lan, "first")
    soon = bill(session, lan, "soon", now=T0 + timedelta(hours=3))
    assert [(p.added, p.skipped, p.stamps) for p in soon.stamps] == [(0, "cooldown", 1)]
    later = bill(session, lan, "later", now=T0 + timedelta(hours=4))
    assert later.stamps[0].stamps == 2


def test_a_product_group_card_counts_items_up_to_its_limit_and_only_in_its_store(
    session: Session, shop: dict, lan
) -> None:
    q1 = shop["stores"]["Q1"]
    card = StampCard(
        name="Trà sữa 10 tặng 1",
        stamps_needed=10,
        reward_id=shop["rewards"]["Bánh ngọt"].id,
        product_group="Trà sữa",
        max_per_bill=3,
        store_id=q1.id,
    )
    session.add(card)
    session.commit()
    assert bill(session, lan, "none", store_id=q1.id).stamps == ()  # no tea on the bill
    result = bill(session, lan, "tea", store_id=q1.id, items={"tra sua": 5})  # folded name, over the limit
    assert [(p.added, p.stamps) for p in result.stamps] == [(3, 3)]
    assert bill(session, lan, "elsewhere", store_id=shop["stores"]["OUTLET"].id, items={"Trà sữa": 2}).stamps == ()
    # 3 + 3 + 3 = 9, then 3 more: the card fills at 10 and the 2 left start the next one
    bill(session, lan, "t2", store_id=q1.id, items={"Trà sữa": 3})
    bill(session, lan, "t3", store_id=q1.id, items={"Trà sữa": 3})
    full = bill(session, lan, "t4", store_id=q1.id, items={"Trà sữa": 3})
    assert full.stamps[0].voucher is not None and full.stamps[0].stamps == 2


def test_a_full_card_gives_its_voucher_even_when_the_catalog_stock_ran_out(session: Session, shop: dict, lan) -> None:
    cake = shop["rewards"]["Bánh ngọt"]
    cake.stock = 0
    session.add(StampCard(name="2 tặng 1", stamps_needed=2, reward_id=cake.id))
    session.commit()
    bill(session, lan, "a")
    full = bill(session, lan, "b")
    assert full.stamps[0].voucher is not None
    session.expire_all()
    assert session.get(Reward, cake.id).stock == 0  # type: ignore[union-attr]


def test_stamps_lapse_after_the_cards_validity(session: Session, coffee_card: StampCard, lan) -> None:
    coffee_card.valid_days = 30
    session.commit()
    first = bill(session, lan, "a")
    assert first.stamps[0].expires_at == T0 + timedelta(days=30)
    bill(session, lan, "b", now=T0 + timedelta(days=10))
    assert stamps.member_cards(session, lan.id, T0 + timedelta(days=31))[0][1] == 0  # shown lapsed
    late = bill(session, lan, "c", now=T0 + timedelta(days=31))
    assert late.stamps[0].stamps == 1 and late.stamps[0].expires_at == T0 + timedelta(days=61)
    lapsed = session.scalars(select(Stamp).where(Stamp.kind == StampKind.EXPIRE)).one()
    assert lapsed.count == -2


def test_a_refund_takes_the_stamps_back_and_reopens_a_card_it_filled(session: Session, coffee_card, lan) -> None:
    for n in range(4):
        bill(session, lan, f"b{n}")
    filling = bill(session, lan, "b4")
    voucher = filling.stamps[0].voucher
    assert voucher is not None and filling.entry is not None
    reverse_earn(session, filling.entry.id, by=OWNER, now=T0 + timedelta(minutes=5))
    session.commit()
    session.expire_all()
    assert session.get(Voucher, voucher.id).status == VoucherStatus.CANCELLED  # type: ignore[union-attr]
    row = progress(session, lan, coffee_card)
    assert (row.stamps, row.cards_completed) == (4, 0)
    reverse_earn(session, filling.entry.id, by=OWNER, now=T0 + timedelta(minutes=6))  # twice: once
    session.commit()
    assert progress(session, lan, coffee_card).stamps == 4
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "reverse")).one()
    assert audit.details["stamps"] == {str(coffee_card.id): {"taken": 1, "kept": 0}}
    assert audit.details["vouchers_cancelled"] == [voucher.code]


def test_a_refund_after_the_voucher_was_used_keeps_what_was_used(session: Session, coffee_card, lan) -> None:
    for n in range(5):
        result = bill(session, lan, f"b{n}")
    voucher = result.stamps[0].voucher
    assert voucher is not None and result.entry is not None
    rewards.use_voucher(session, voucher.code, key="use", now=T0)
    session.commit()
    reverse_earn(session, result.entry.id, by=OWNER, now=T0)
    session.commit()
    row = progress(session, lan, coffee_card)
    assert (row.stamps, row.cards_completed) == (0, 1)
    assert session.scalars(select(Stamp).where(Stamp.kind == StampKind.REVERSE)).one().count == 0


def test_a_stamp_only_program_stamps_without_points_and_refunds_by_the_stamp(
    session: Session, coffee_card, lan
) -> None:
    save_rules(session, replace(load_rules(session), earn_rate=Rate(0, 10_000)))
    session.commit()
    rules = load_rules(session)
    result = earn_for_bill(session, lan.id, 60_000, key="c1", by=OWNER, rules=rules, tz=TZ, now=T0, bill_ref="HD1")
    session.commit()
    assert result.entry is None and result.points == 0 and result.stamps_added == 1
    with pytest.raises(DuplicateBill):  # the same bill number again, under another key
        earn_for_bill(session, lan.id, 60_000, key="c2", by=OWNER, rules=rules, tz=TZ, now=T0, bill_ref="HD1")
    session.rollback()
    stamp_id = result.stamps[0].stamp_id
    assert stamp_id is not None
    undone = reverse_stamps(session, stamp_id, by=OWNER, now=T0)
    assert [(u.taken, u.kept) for u in undone] == [(1, 0)]
    assert reverse_stamps(session, stamp_id, by=OWNER, now=T0) == []  # a double click
    session.commit()
    assert progress(session, lan, coffee_card).stamps == 0
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "reverse_stamps")) == 1


def test_stamps_are_append_only(session: Session, coffee_card, lan) -> None:
    bill(session, lan, "a")
    row = session.scalars(select(Stamp)).one()
    row.count = 5
    with pytest.raises(StampAppendOnly):
        session.flush()
    session.rollback()


def test_the_stamp_card_picture_fills_its_circles() -> None:
    face = StampFace("Cà phê Sáng", "Mua 5 ly tặng 1", stamps=3, needed=5, reward_name="Cà phê sữa đá")
    png = render_stamp_card(face)
    assert png == render_stamp_card(face) and len(png) < 1_000_000  # one upload serves every member at 3/5
    assert png != render_stamp_card(replace(face, stamps=4))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    filled, empty = image.getpixel((178, 165)), image.getpixel((586, 165))  # circles 1 and 4, off their marks
    assert filled != empty


# --- through the real paths ----------------------------------------------------------------------------


def test_the_cashiers_one_scan_gives_points_and_a_stamp_once_and_the_chat_shows_the_card(
    app: Flask, zalo: ZaloFake, session: Session, coffee_card, lan
) -> None:
    zalo.accept_messages()
    zalo.accept_uploads()
    cashier = login(app, "thu-ngan")
    page = text_of(cashier.get(f"/counter/members/{lan.id}"))
    assert "Thẻ tem “Mua 5 ly tặng 1”: <strong>0/5</strong> tem" in page and "Tích điểm và tem" in page
    form = {"amount": "50000", "bill_ref": "HD7", "op": "op-1"}
    first = cashier.post(f"/counter/members/{lan.id}/earn", form, follow_redirects=True)
    assert "+1 tem thẻ “Mua 5 ly tặng 1” — 1/5 tem." in text_of(first)
    cashier.post(f"/counter/members/{lan.id}/earn", form, follow_redirects=True)  # a double click
    assert progress(session, lan, coffee_card).stamps == 1
    run_jobs(app)
    sent = zalo.sent_messages()
    assert [m["message"].get("text") for m in sent][0].startswith("+5 điểm từ hóa đơn 50.000đ (HD7)")
    picture = sent[1]["message"]
    assert picture["attachment"]["payload"]["elements"][0]["attachment_id"] == "att-1"
    assert picture["text"] == ("+1 tem thẻ “Mua 5 ly tặng 1”: 1/5 tem, còn 4 tem nữa là được Cà phê sữa đá.")
    assert len(sent) == 2


def test_the_counter_asks_for_items_of_a_product_group_card(
    app: Flask, zalo: ZaloFake, session: Session, shop: dict, lan
) -> None:
    card = StampCard(
        name="Bánh 6 tặng 1",
        stamps_needed=6,
        reward_id=shop["rewards"]["Bánh ngọt"].id,
        product_group="Bánh",
        max_per_bill=2,
    )
    session.add(card)
    session.commit()
    cashier = login(app, "thu-ngan")
    assert "Số Bánh trong hóa đơn" in text_of(cashier.get(f"/counter/members/{lan.id}"))
    form = {"amount": "90000", "op": "op-9", f"items:{card.id}": "4"}
    done = cashier.post(f"/counter/members/{lan.id}/earn", form, follow_redirects=True)
    assert "+2 tem thẻ “Bánh 6 tặng 1” — 2/6 tem." in text_of(done)


def test_the_fifth_stamp_sends_the_voucher_in_the_chat(
    app: Flask, zalo: ZaloFake, session: Session, coffee_card, lan
) -> None:
    for n in range(4):
        bill(session, lan, f"b{n}")
    zalo.accept_messages()
    zalo.accept_uploads()
    cashier = login(app, "thu-ngan")
    done = cashier.post(f"/counter/members/{lan.id}/earn", {"amount": "45000", "op": "op-5"}, follow_redirects=True)
    voucher = session.scalars(select(Voucher)).one()
    assert f"khách được voucher {voucher.code[:4]}-{voucher.code[4:]}" in text_of(done)
    run_jobs(app)
    caption = zalo.sent_messages()[1]["message"]["text"]
    assert caption.startswith("🎉 Đủ 5 tem thẻ “Mua 5 ly tặng 1”! Quà của bạn: Cà phê sữa đá — mã ")
    assert f"dùng đến {voucher.expires_at.astimezone(TZ):%d/%m/%Y}" in caption


def test_a_counter_claim_in_the_chat_stamps_the_card(
    app: Flask, zalo: ZaloFake, session: Session, coffee_card, lan
) -> None:
    claim, _ = create_claim(session, 80_000, key="k1", now=datetime.now(UTC))
    session.commit()
    chat = Chat(app, zalo)
    answers = chat.say(f"#{claim.code}")
    texts = chat.texts(answers)
    assert texts[0].startswith("+8 điểm từ hóa đơn 80.000đ")
    assert texts[1] == "+1 tem thẻ “Mua 5 ly tặng 1”: 1/5 tem, còn 4 tem nữa là được Cà phê sữa đá."
    assert "attachment" in answers[1]
    chat.say(f"#{claim.code}")  # sent again: nothing more
    assert progress(session, lan, coffee_card).stamps == 1


def test_tem_in_the_chat_shows_each_card(app: Flask, zalo: ZaloFake, session: Session, coffee_card, lan) -> None:
    bill(session, lan, "a")
    bill(session, lan, "b")
    chat = Chat(app, zalo)
    answers = chat.say("THE TEM")
    assert answers[0]["text"] == "Thẻ “Mua 5 ly tặng 1”: 2/5 tem, còn 3 tem nữa là được Cà phê sữa đá."
    assert answers[0]["attachment"]["payload"]["elements"][0]["media_type"] == "image"
    assert "thẻ thành viên" not in answers[0]["text"].lower()  # not the member card's "thẻ"


def test_tem_without_cards_says_so(app: Flask, zalo: ZaloFake, session: Session, lan) -> None:
    answers = Chat(app, zalo).say("tem")
    assert "chưa có thẻ tích tem nào" in answers[0]["text"]


def test_the_pos_api_stamps_by_items_once_and_refunds_a_stamp_only_bill(
    app: Flask, session: Session, shop: dict, lan
) -> None:
    card = StampCard(
        name="Cà phê 8 tặng 1",
        stamps_needed=8,
        reward_id=shop["rewards"]["Cà phê sữa đá"].id,
        product_group="Cà phê",
        max_per_bill=4,
    )
    session.add(card)
    save_rules(session, replace(load_rules(session), earn_rate=Rate(0, 10_000)))
    q1 = session.get(Store, shop["stores"]["Q1"].id)
    assert q1 is not None
    q1.earn_points = 0  # a stamp-only shop
    key = create_api_key(session, store_id=q1.id, name="POS", created_by_id=None).secret
    session.commit()
    client = app.test_client()

    def post(path: str, idem: str | None = None, **body: object):  # type: ignore[no-untyped-def]
        headers = {"X-Api-Key": key, **({"Idempotency-Key": idem} if idem else {})}
        return client.post(f"/api/v1{path}", json=body, headers=headers)

    body = {"phone": "0912345678", "amount": 120_000, "items": {"Cà phê": 3}}
    first = post("/earns", "e-1", **body)
    assert first.status_code == 201, first.json
    (stamped,) = first.json["stamps"]
    assert {k: stamped[k] for k in ("added", "stamps", "stamps_needed", "voucher_code")} == {
        "added": 3,
        "stamps": 3,
        "stamps_needed": 8,
        "voucher_code": None,
    }
    retry = post("/earns", "e-1", **body)
    assert retry.status_code == 200 and retry.json["replayed"] and retry.json["stamps"][0]["stamps"] == 3
    other_member = create_member(session, now=T0, name="Khoa", phone="84912000111")
    session.commit()
    reused = post("/earns", "e-1", **{**body, "phone": "0912000111"})  # the key of Lan's bill, for Khoa
    assert reused.status_code == 409 and reused.json["error"]["code"] == "idempotency_conflict"
    assert (
        session.scalar(
            select(func.count()).select_from(MemberStampCard).where(MemberStampCard.member_id == other_member.id)
        )
        == 0
    )
    assert post("/earns", "e-2", **{**body, "items": {"Cà phê": -1}}).status_code == 422
    assert post("/earns", "e-3", **{**body, "items": ["Cà phê"]}).status_code == 422
    refund = post(f"/stamps/{stamped['stamp_id']}/reverse")
    assert refund.status_code == 200 and refund.json["stamps"] == [{"stamp_card_id": card.id, "taken": 3, "kept": 0}]
    assert post(f"/stamps/{stamped['stamp_id']}/reverse").json["stamps"] == []  # a retry
    other = create_api_key(session, store_id=shop["stores"]["OUTLET"].id, name="B", created_by_id=None).secret
    session.commit()
    foreign = client.post(f"/api/v1/stamps/{stamped['stamp_id']}/reverse", headers={"X-Api-Key": other})
    assert foreign.status_code == 404
    assert progress(session, lan, card).stamps == 0


def test_the_console_runs_stamp_cards(app: Flask, session: Session, shop: dict, lan) -> None:
    owner = login(app, "chu")
    assert "Thẻ tem" in text_of(owner.get("/admin/"))
    form = {
        "name": "Mua 5 ly tặng 1",
        "stamps_needed": "5",
        "reward_id": str(shop["rewards"]["Cà phê sữa đá"].id),
        "min_bill_amount": "30.000",
        "min_hours_between": "0",
        "max_per_bill": "1",
        "is_active": "on",
    }
    bad = owner.post(
        "/admin/stamp-cards/new", {**form, "stamps_needed": "1", "reward_id": ""}, page="/admin/stamp-cards/new"
    )
    assert "Số tem: từ 2 đến 30." in text_of(bad) and "Chọn quà khách nhận khi đủ tem." in text_of(bad)
    saved = owner.post("/admin/stamp-cards/new", form, page="/admin/stamp-cards/new", follow_redirects=True)
    assert "Đã lưu thẻ tem “Mua 5 ly tặng 1”." in text_of(saved)
    card = session.scalars(select(StampCard)).one()
    assert card.min_bill_amount == 30_000 and card.is_active
    bill(session, lan, "a")
    listing = text_of(owner.get("/admin/stamp-cards/"))
    assert "từ 30.000đ" in listing
    dashboard = text_of(owner.get("/admin/"))
    assert (
        'id="stamp-figures"' in dashboard
        and "Mua 5 ly tặng 1</a></td> <td>1</td><td>1</td><td>0</td><td>0</td>" in dashboard
    )
    changed = owner.post(f"/admin/stamp-cards/{card.id}", {**form, "stamps_needed": "8"}, page="/admin/stamp-cards/")
    assert "Thẻ đã có khách tích tem" in text_of(changed)
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "stamp_card_change")) == 1
    cashier = login(app, "thu-ngan")
    assert cashier.get("/admin/stamp-cards/").status_code in (302, 403)
