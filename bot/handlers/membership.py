"""Becoming a member and keeping details right: follow, shared info, phone, birthday, name, card, referrals."""

from __future__ import annotations

from datetime import date, timedelta

from bot import buttons
from bot.parsing import BadInput, parse_birthday, show_birthday
from bot.replies import Reply, render, reply
from bot.router import Bot, Context, Handler
from loyalty import bonuses
from loyalty import format as fmt
from loyalty.cards import rotate_card
from loyalty.errors import LinkRefused, PhoneNeedsProof, PhoneTaken, ReferralRefused
from loyalty.linking import LINK_CODE_DIGITS, cancel_requests, confirm_link_from_chat, pending_request, request_link
from loyalty.members import register_zalo_user
from loyalty.phones import display_phone, normalize_phone
from loyalty.referrals import link_referral
from models import LinkRequest, Member, MemberStatus, Tier, usable_template
from zalo.events import Follow, SubmitInfo
from zalo.messages import request_user_info_message

INFO_REQUEST_INTERVAL = timedelta(hours=24)  # do not send the share-info card more often than this
MAX_NAME = 100


def register(bot: Bot) -> None:
    bot.on_event(Follow)(on_follow)
    bot.on_event(SubmitInfo)(on_submit_info)
    bot.command("sđt", "sdt", "số điện thoại", "so dt", "điện thoại", "phone")(on_phone)
    bot.command("sinh nhật", "ngày sinh", "sn", "birthday")(on_birthday)
    bot.command("tên", "họ tên")(on_name)
    bot.command("đổi thẻ", "thẻ mới", "doithe")(members_only(on_rotate_card))
    bot.command("thẻ", "card", "thẻ thành viên", "mã thẻ", "qr")(members_only(on_card))
    bot.command("giới thiệu", "gioithieu", "mời bạn", "mã giới thiệu")(members_only(on_referral_info))


# --- shared helpers ---------------------------------------------------------------------------------


def members_only(handler: Handler) -> Handler:
    """Unregistered users get the share-info card instead; blocked members a short notice."""

    def wrapped(ctx: Context) -> list[Reply]:
        if ctx.member is None:
            return unregistered(ctx)
        if ctx.member.status == MemberStatus.BLOCKED:
            return [reply("blocked")]
        return handler(ctx)

    wrapped.__name__ = handler.__name__
    return wrapped


def unregistered(ctx: Context) -> list[Reply]:
    """What a chat user who is not a member gets instead: the pending link code, or the way to register."""
    request = pending_request(ctx.session, ctx.user.user_id, ctx.now) if ctx.user is not None else None
    if request is not None:
        return [link_pending_reply(ctx, request)]
    return [reply("need_registration", shop_name=ctx.shop_name), info_request(ctx)]


def link_pending_reply(ctx: Context, request: LinkRequest) -> Reply:
    """How to finish linking. A code that went to the member's phone is never shown here: that is the proof."""
    member = ctx.session.get(Member, request.member_id)
    phone = display_phone(member.phone or "") if member else ""
    expires = fmt.day(request.expires_at, ctx.config.tz)
    if request.by_phone:
        return reply("link_code_sent", phone=phone, shop_name=ctx.shop_name, expires=expires)
    return reply("link_pending", phone=phone, shop_name=ctx.shop_name, code=request.code, expires=expires)


def _link_replies(ctx: Context, request: LinkRequest) -> list[Reply]:
    """The chat's answer to a claimed phone, and the code to that phone's Zalo when the shop has an approved
    template for it (sent once per request: each costs the shop a template message)."""
    member = ctx.session.get(Member, request.member_id)
    if member is None or not member.phone or usable_template(ctx.session, "link_code") is None:
        return [link_pending_reply(ctx, request)]
    if request.by_phone:
        return [link_pending_reply(ctx, request)]
    request.by_phone = True
    shop = ctx.shop_name
    code = Reply(
        text=render("link_code_phone", shop_name=shop, code=request.code),
        to_phone=member.phone,
        template_purpose="link_code",
        template_fields={"ma_xac_nhan": request.code, "ten": member.name or "", "shop": shop},
    )
    return [link_pending_reply(ctx, request), code]


def try_link_code(ctx: Context) -> list[Reply] | None:
    """Six digits from a chat user whose code went to the member's phone: link, or say it was wrong."""
    digits = "".join(ctx.text.split())
    if ctx.member is not None or ctx.user is None or not (digits.isdigit() and len(digits) == LINK_CODE_DIGITS):
        return None
    request = pending_request(ctx.session, ctx.user.user_id, ctx.now)
    if request is None or not request.by_phone:
        return None
    member = ctx.session.get(Member, request.member_id)
    try:
        confirm_link_from_chat(ctx.session, zalo_user_id=ctx.user.user_id, code=digits, now=ctx.now)
    except LinkRefused as refused:
        if refused.reason == "wrong_code":
            phone = display_phone(member.phone or "") if member else ""
            return [reply("link_code_wrong", shop_name=ctx.shop_name, phone=phone)]
        return unregistered(ctx)
    ctx.forget_member()
    assert member is not None
    linked = reply(
        "linked_in_chat",
        name=member.name or "bạn",
        shop_name=ctx.shop_name,
        points=fmt.points(member.points_balance),
        tier=tier_name(ctx, member),
    )
    return [linked, card_reply(ctx, member)]


def info_request(ctx: Context) -> Reply:
    """The request_user_info card ("Chia sẻ thông tin"); Zalo answers with user_submit_info."""
    if ctx.user is not None:
        ctx.user.info_requested_at = ctx.now
    return Reply(
        message=request_user_info_message(
            title=f"Thẻ thành viên {ctx.shop_name}",
            subtitle="Chia sẻ tên và số điện thoại để tích điểm, đổi quà và nhận quà sinh nhật",
            image_url=ctx.config.logo_url,
        )
    )


def should_request_info(ctx: Context) -> bool:
    requested = ctx.user.info_requested_at if ctx.user else None
    return requested is None or ctx.now - requested >= INFO_REQUEST_INTERVAL


def tier_name(ctx: Context, member: Member) -> str:
    tier = ctx.session.get(Tier, member.tier_id) if member.tier_id else None
    return tier.name if tier else "Thành viên"


def card_reply(ctx: Context, member: Member) -> Reply:
    return Reply(text=_render_caption(member), card_member_id=member.id)


def _render_caption(member: Member) -> str:
    return render("card_caption", name=member.name or "bạn")


# --- registration -----------------------------------------------------------------------------------


def on_follow(ctx: Context) -> list[Reply]:
    if ctx.user is not None:
        ctx.user.is_follower = True
        ctx.user.followed_at = ctx.now
        ctx.user.unfollowed_at = None
    member = ctx.member
    if member is not None:  # re-follow: same member, same balance
        return [
            reply(
                "welcome_back",
                buttons=(buttons.BALANCE, buttons.CARD, buttons.REWARDS),
                shop_name=ctx.shop_name,
                name=member.name or "bạn",
                points=fmt.points(member.points_balance),
                tier=tier_name(ctx, member),
            )
        ]
    return [reply("welcome", shop_name=ctx.shop_name), info_request(ctx)]


def on_submit_info(ctx: Context) -> list[Reply]:
    event = ctx.event
    assert isinstance(event, SubmitInfo) and ctx.user is not None
    phone = normalize_phone(event.info.phone) if event.info.phone else None
    name = event.info.name[:MAX_NAME] or ctx.user.display_name or ""
    return _register(ctx, name=name, phone=phone, birthday=event.info.birthday)


def _register(ctx: Context, *, name: str, phone: str | None, birthday: date | None = None) -> list[Reply]:
    assert ctx.user is not None
    was_member = ctx.member is not None
    try:
        registration = register_zalo_user(
            ctx.session, zalo_user_id=ctx.user.user_id, now=ctx.now, name=name, phone=phone, birthday=birthday
        )
    except PhoneTaken:
        return [reply("phone_taken", phone=display_phone(phone or ""))]
    except PhoneNeedsProof as claim:
        user_id, member_id = ctx.user.user_id, claim.member_id
        request = request_link(
            ctx.session, zalo_user_id=user_id, member_id=member_id, name=name, birthday=birthday, now=ctx.now
        )
        return _link_replies(ctx, request)
    ctx.forget_member()
    member = registration.member
    cancel_requests(ctx.session, ctx.user.user_id, ctx.now)
    replies = _apply_pending_referral(ctx, member)
    welcome = 0 if was_member else bonuses.grant_welcome(ctx.session, member, ctx.rules, ctx.now)
    profile = bonuses.grant_profile(ctx.session, member, ctx.rules, ctx.now)
    if was_member:
        saved = [w for w, value in (("tên", name), ("số điện thoại", phone), ("ngày sinh", birthday)) if value]
        return [reply("info_updated", what=", ".join(saved) or "không có gì mới", bonus=_points(profile)), *replies]
    return [
        reply(
            "registered",
            shop_name=ctx.shop_name,
            name=member.name or "bạn",
            tier=tier_name(ctx, member),
            birthday_hint=member.birthday is None,
            welcome=_points(welcome),
            profile=_points(profile),
            profile_offer=_points(ctx.rules.profile_bonus_points) if member.birthday is None else "",
        ),
        *replies,
        card_reply(ctx, member),
    ]


def _apply_pending_referral(ctx: Context, member: Member) -> list[Reply]:
    if ctx.user is None or not ctx.user.pending_referral_code:
        return []
    code, ctx.user.pending_referral_code = ctx.user.pending_referral_code, None
    return link_referral_reply(ctx, member, code)


def on_phone(ctx: Context) -> list[Reply]:
    phone = normalize_phone(ctx.args)
    if phone is None:
        return [reply("phone_invalid", text=ctx.args.strip()[:30] or "(trống)")]
    if ctx.member is None:
        return _register(ctx, name=ctx.user.display_name or "" if ctx.user else "", phone=phone)
    try:
        register_zalo_user(ctx.session, zalo_user_id=ctx.member.zalo_user_id or "", now=ctx.now, phone=phone)
    except PhoneTaken:
        return [reply("phone_taken", phone=display_phone(phone))]
    return [reply("phone_saved", phone=display_phone(phone))]


def on_birthday(ctx: Context) -> list[Reply]:
    try:
        born = parse_birthday(ctx.args, ctx.now.astimezone(ctx.config.tz).date())
    except BadInput as exc:
        return [reply("birthday_invalid", reason=str(exc), text=ctx.args.strip()[:30] or "(trống)")]
    if ctx.member is None:
        return unregistered(ctx)
    ctx.member.birthday = born
    bonus = bonuses.grant_profile(ctx.session, ctx.member, ctx.rules, ctx.now)
    return [reply("birthday_saved", birthday=show_birthday(born), shop_name=ctx.shop_name, bonus=_points(bonus))]


def _points(points: int) -> str:
    """ "20" for a reply that names the points given, "" for none (the template leaves the line out)."""
    return fmt.points(points) if points else ""


def on_name(ctx: Context) -> list[Reply]:
    name = " ".join(ctx.args.split())
    if not name or len(name) > MAX_NAME:
        return [reply("name_invalid")]
    if ctx.member is None:
        return unregistered(ctx)
    ctx.member.name = name
    return [reply("name_saved", name=name)]


# --- card and referrals -----------------------------------------------------------------------------


def on_card(ctx: Context) -> list[Reply]:
    assert ctx.member is not None
    return [card_reply(ctx, ctx.member)]


def on_rotate_card(ctx: Context) -> list[Reply]:
    assert ctx.member is not None
    member = rotate_card(ctx.session, ctx.member.id)
    return [reply("card_rotated"), card_reply(ctx, member)]


def on_referral_info(ctx: Context) -> list[Reply]:
    assert ctx.member is not None
    rules = ctx.rules
    bonus = ""
    if rules.referral_bonus_kind == "fixed" and rules.referral_bonus_value:
        bonus = f"{fmt.points(rules.referral_bonus_value)} điểm"
    elif rules.referral_bonus_kind == "percent" and rules.referral_bonus_value:
        bonus = f"điểm thưởng bằng {rules.referral_bonus_value}% hóa đơn đầu tiên của bạn ấy"
    if rules.referral_affiliate_pct:
        bonus += (", rồi " if bonus else "") + (
            f"{rules.referral_affiliate_pct}% giá trị các hóa đơn của bạn ấy trong {rules.referral_affiliate_days} ngày"
        )
    return [
        reply(
            "referral_info",
            code=ctx.member.code,
            bonus=bonus,
            friend_bonus=fmt.points(rules.referee_bonus_points) if rules.referee_bonus_points else "",
            shop_name=ctx.shop_name,
            oa_link=ctx.config.oa_link,
            invite_link=f"{ctx.config.invite_url}{ctx.member.code}" if ctx.config.invite_url else "",
        )
    ]


def link_referral_reply(ctx: Context, member: Member, code: str) -> list[Reply]:
    try:
        referrer = link_referral(ctx.session, member, code)
    except ReferralRefused as exc:
        return [reply("referral_refused", reason=exc.reason, code=code)]
    return [reply("referral_linked", referrer=referrer.name or "bạn của bạn")]
