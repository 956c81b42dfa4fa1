"""Customers' personal data in the chat: offers only with consent (the one-time question, "nhận tin" /
"hủy nhận tin"), "dữ liệu của tôi" and "xóa tài khoản" (loyalty/consent.py, loyalty/privacy.py)."""

from __future__ import annotations

from datetime import timedelta

from bot import buttons
from bot.parsing import show_birthday
from bot.replies import Reply, reply
from bot.router import Bot, Context
from bot.state import clear_state, set_state
from loyalty import format as fmt
from loyalty.consent import record_consent
from loyalty.phones import display_phone
from loyalty.privacy import member_data, record_access, request_erasure
from loyalty.text import fold
from models import ConsentState

CONFIRM_ERASE = "confirm_erase"
CONFIRM_TTL = timedelta(minutes=10)
YES = ("có", "co", "ok", "yes", "đồng ý", "xác nhận", "xóa")
NO = ("không", "khong", "ko", "no", "hủy", "thôi", "không xóa")
CONSENT_WORDS = {
    ConsentState.GRANTED: "đồng ý nhận ưu đãi",
    ConsentState.WITHDRAWN: "không nhận ưu đãi",
    ConsentState.UNKNOWN: "chưa cho biết (chỉ nhận tin về điểm, voucher)",
}


def register(bot: Bot) -> None:
    bot.command("hủy nhận tin", "huynhantin", "không nhận tin", "khongnhantin", "ngừng nhận tin", "tắt ưu đãi")(
        on_stop_offers
    )
    bot.command("dừng", "stop", exact=True)(on_stop_offers)  # only the bare word: "dùng …" folds the same
    bot.command("nhận tin", "nhantin", "nhận ưu đãi", "đồng ý nhận tin")(on_accept_offers)
    bot.command("dữ liệu của tôi", "dulieucuatoi", "thông tin của tôi", "dữ liệu cá nhân")(on_my_data)
    bot.command("xóa tài khoản", "xoataikhoan", "xóa dữ liệu", "xóa thông tin của tôi")(on_erase)
    bot.on_step(CONFIRM_ERASE)(on_confirm_erase)
    bot.after_reply(ask_once)


def on_my_data(ctx: Context) -> list[Reply]:
    """Everything personal the shop holds, at once (an access request answered and recorded)."""
    member = ctx.member
    if member is None:
        return [reply("need_registration", shop_name=ctx.shop_name)]
    data = member_data(ctx.session, member)
    record_access(ctx.session, member, "chat", ctx.now)
    return [
        reply(
            "my_data",
            shop_name=ctx.shop_name,
            name=data["name"] or "(chưa có)",
            phone=display_phone(data["phone"]) if data["phone"] else "(chưa có)",
            birthday=show_birthday(data["birthday"]) if data["birthday"] else "(chưa có)",
            code=data["code"],
            tier=data["tier"] or "—",
            points=fmt.points(data["points"]),
            joined=fmt.day(data["joined_at"], ctx.config.tz),
            consent=CONSENT_WORDS[data["consent"]],
            zalo_name=data["zalo_name"] or "(không có)",
            privacy_url=ctx.config.privacy_url,
        )
    ]


def on_erase(ctx: Context) -> list[Reply]:
    member, user = ctx.member, ctx.user
    if member is None or user is None:
        return [reply("need_registration", shop_name=ctx.shop_name)]
    set_state(ctx.session, user.user_id, CONFIRM_ERASE, {"member_id": member.id}, ctx.now, CONFIRM_TTL)
    return [
        reply(
            "erase_confirm",
            buttons=(buttons.YES, buttons.NO),
            shop_name=ctx.shop_name,
            points=fmt.points(member.points_balance),
        )
    ]


def on_confirm_erase(ctx: Context) -> list[Reply] | None:
    """CÓ files the request (the shop erases within the due date, after vouchers and refunds are settled);
    anything else drops the question."""
    state, user, member = ctx.state, ctx.user, ctx.member
    assert state is not None and user is not None
    clear_state(ctx.session, user.user_id)
    answer = fold(ctx.text)
    if answer not in {fold(w) for w in YES}:
        return [reply("erase_cancelled")] if answer in {fold(w) for w in NO} else None
    if member is None or member.id != state.data.get("member_id"):
        return [reply("nothing_pending")]
    request = request_erasure(ctx.session, member, "chat", ctx.now)
    record_consent(ctx.session, member, granted=False, channel="chat", actor=f"chat:{user.user_id}", now=ctx.now)
    return [reply("erase_requested", shop_name=ctx.shop_name, due=fmt.day(request.due_at, ctx.config.tz))]


def on_accept_offers(ctx: Context) -> list[Reply]:
    if ctx.member is None or ctx.user is None:
        return [reply("need_registration", shop_name=ctx.shop_name)]
    record_consent(ctx.session, ctx.member, granted=True, channel="chat", actor=f"chat:{ctx.user.user_id}", now=ctx.now)
    return [reply("offers_on", shop_name=ctx.shop_name)]


def on_stop_offers(ctx: Context) -> list[Reply]:
    if ctx.member is None or ctx.user is None:
        return [reply("need_registration", shop_name=ctx.shop_name)]
    record_consent(
        ctx.session, ctx.member, granted=False, channel="chat", actor=f"chat:{ctx.user.user_id}", now=ctx.now
    )
    return [reply("offers_off", shop_name=ctx.shop_name)]


def ask_once(ctx: Context, replies: list[Reply]) -> list[Reply]:
    """A member who never answered is asked, once, after whatever the bot just said (registration included)."""
    if not replies:  # nothing said (receipts, unfollow): no member lookup on that path
        return replies
    member = ctx.member
    if member is None or member.consent_asked_at is not None or member.marketing_consent != ConsentState.UNKNOWN:
        return replies
    member.consent_asked_at = ctx.now
    question = reply(
        "consent_question",
        buttons=(buttons.OFFERS_YES, buttons.OFFERS_NO),
        shop_name=ctx.shop_name,
        privacy_url=ctx.config.privacy_url,
    )
    return [*replies, question]
