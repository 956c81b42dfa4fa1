"""What a member asks about their account: balance, history, tiers, rewards, and redeeming with a "CÓ"."""

from __future__ import annotations

from datetime import timedelta

from bot import buttons, confirm, history
from bot.confirm import NO, YES
from bot.handlers.membership import members_only, tier_name
from bot.replies import Reply, reply
from bot.router import Bot, Context
from bot.state import set_state
from bot.text import fold
from loyalty import format as fmt
from loyalty import ledger, rewards, tiers, vip
from loyalty.codes import pretty_voucher_code
from loyalty.errors import InsufficientPoints, MemberBlocked, RewardUnavailable
from models import Reward, Tier

HISTORY_LENGTH = 10
EXPIRY_NOTICE = timedelta(days=30)
CONFIRM_TTL = timedelta(minutes=10)
CONFIRM_REDEEM = "confirm_redeem"


def register(bot: Bot) -> None:
    bot.on_step(CONFIRM_REDEEM)(on_confirm_step)
    bot.command("điểm", "số dư", "xem điểm", "điểm của tôi", "tích điểm")(members_only(on_balance))
    bot.command("lịch sử", "lichsu", "lịch sử điểm", "giao dịch")(members_only(on_history))
    bot.command("hạng", "hạng thành viên", "cấp bậc", "quyền lợi")(on_tiers)
    bot.command("quà", "voucher", "đổi quà", "ưu đãi", "danh sách quà")(members_only(on_rewards))
    bot.command("đổi", "đổi điểm")(members_only(on_redeem))
    bot.command(*YES, exact=True)(on_nothing_pending)
    bot.command(*NO, exact=True)(on_nothing_pending)


def on_balance(ctx: Context) -> list[Reply]:
    member = ctx.member
    assert member is not None
    progress = tiers.progress(ctx.session, member, ctx.rules.tier_window_start(ctx.now))
    soon = ledger.expiring(ctx.session, member.id, until=ctx.now + EXPIRY_NOTICE, tz=ctx.config.tz)
    paid = vip.current_membership(ctx.session, member.id, ctx.now)
    return [
        reply(
            "balance",
            buttons=(buttons.REWARDS, buttons.CARD, buttons.HISTORY),
            points=fmt.points(member.points_balance),
            tier=tier_name(ctx, member),
            next_tier=progress.next.name if progress.next else None,
            missing=fmt.points(progress.missing),
            expiring=[(day.strftime("%d/%m/%Y"), fmt.points(pts)) for day, pts in soon],
            vip_until=fmt.day(paid.ends_at, ctx.config.tz) if paid else None,
        )
    ]


def on_history(ctx: Context) -> list[Reply]:
    assert ctx.member is not None
    entries = ledger.history(ctx.session, ctx.member.id, limit=HISTORY_LENGTH)
    if not entries:
        return [reply("history_empty", buttons=(buttons.CARD,))]
    lines = [history.describe(e, ctx.config.tz) for e in entries]
    return [reply("history", buttons=(buttons.BALANCE, buttons.REWARDS), count=len(lines), lines=lines)]


def on_tiers(ctx: Context) -> list[Reply]:
    counts = tiers.member_counts(ctx.session)
    mine = ctx.member.tier_id if ctx.member else None
    shown = ctx.rules.automations.tier_counts_shown  # off by default: how big a tier is is the shop's business
    ladder = [
        {
            "name": t.name,
            "threshold": fmt.points(t.threshold),
            "count": fmt.points(n) if shown else None,
            "benefits": t.benefits.strip(),
            "mine": t.id == mine,
        }
        for t, n in counts
    ]
    if not ladder:
        return [Reply(text="Chương trình chưa có hạng thành viên.")]
    return [
        reply(
            "tiers",
            buttons=(buttons.BALANCE,),
            shop_name=ctx.shop_name,
            tiers=ladder,
            window_months=ctx.rules.tier_window_months,
        )
    ]


def on_rewards(ctx: Context) -> list[Reply]:
    if ctx.args.strip():
        return on_redeem(ctx)  # "đổi quà 2" = "đổi 2"
    member = ctx.member
    assert member is not None
    tier = ctx.session.get(Tier, member.tier_id) if member.tier_id else None
    catalog = rewards.catalog(ctx.session, ctx.now)
    priced = [(n, r, rewards.cost_for(r, tier)) for n, r in enumerate(catalog, start=1)]
    affordable = [(n, r.name, fmt.points(cost)) for n, r, cost in priced if cost <= member.points_balance]
    vouchers = [
        (pretty_voucher_code(v.code), _reward_name(ctx, v.reward_id), fmt.day(v.expires_at, ctx.config.tz))
        for v in rewards.unused_vouchers(ctx.session, member.id, ctx.now)
    ]
    cheapest = f"{priced[0][1].name} — {fmt.points(priced[0][2])} điểm" if priced else ""
    return [
        reply(
            "rewards",
            buttons=(buttons.BALANCE, buttons.CARD),
            points=fmt.points(member.points_balance),
            affordable=affordable,
            catalog_size=len(priced),
            cheapest=cheapest,
            others=len(priced) - len(affordable) if affordable else 0,
            vouchers=vouchers,
        )
    ]


def on_redeem(ctx: Context) -> list[Reply]:
    member = ctx.member
    assert member is not None
    query = ctx.args.strip()
    if not query:
        return [reply("redeem_how", buttons=(buttons.REWARDS,))]
    reward = _find_reward(ctx, query)
    if reward is None:
        return [reply("redeem_not_found", buttons=(buttons.REWARDS,), query=query[:40])]
    tier = ctx.session.get(Tier, member.tier_id) if member.tier_id else None
    cost = rewards.cost_for(reward, tier)
    try:
        rewards.check_available(ctx.session, reward, member, ctx.now)
    except RewardUnavailable as exc:
        return [reply("redeem_unavailable", reason=exc.reason, detail=exc.detail, reward=reward.name)]
    if cost > member.points_balance:
        return [_insufficient(reward.name, cost, member.points_balance)]
    assert ctx.user is not None
    set_state(
        ctx.session, ctx.user.user_id, CONFIRM_REDEEM, {"reward_id": reward.id, "cost": cost}, ctx.now, CONFIRM_TTL
    )
    return [
        reply(
            "redeem_confirm",
            buttons=(buttons.YES, buttons.NO),
            cost=fmt.points(cost),
            reward=reward.name,
            after=fmt.points(member.points_balance - cost),
        )
    ]


def on_confirm_step(ctx: Context) -> list[Reply] | None:
    """The answer to "trả lời CÓ để đổi": yes redeems, no cancels, anything else drops the question."""
    said = confirm.answer(ctx)
    if said.kind == "no":
        return [reply("redeem_cancelled", buttons=(buttons.REWARDS,))]
    if said.kind == "other":
        return None  # a new command: answer it normally
    reward_id = int(said.data["reward_id"])
    member, user = ctx.member, ctx.user
    if member is None or user is None or said.token is None:
        return [reply("nothing_pending")]
    key = f"chat-redeem:{user.user_id}:{said.token}"
    reward = ctx.session.get(Reward, reward_id)
    try:
        result = rewards.redeem(ctx.session, member.id, reward_id, key=key, now=ctx.now)
    except InsufficientPoints as exc:
        return [_insufficient(reward.name if reward else "quà này", exc.needed, exc.balance)]
    except RewardUnavailable as exc:
        return [
            reply(
                "redeem_unavailable", reason=exc.reason, detail=exc.detail, reward=reward.name if reward else "Quà này"
            )
        ]
    except MemberBlocked:
        return [reply("blocked")]
    voucher = result.voucher
    return [
        reply(
            "redeem_done",
            buttons=(buttons.REWARDS, buttons.BALANCE),
            reward=_reward_name(ctx, reward_id),
            code=pretty_voucher_code(voucher.code),
            expires=fmt.day(voucher.expires_at, ctx.config.tz),
            points=fmt.points(result.balance),
        )
    ]


def on_nothing_pending(ctx: Context) -> list[Reply]:
    return [reply("nothing_pending", buttons=(buttons.REWARDS,))]


def _find_reward(ctx: Context, query: str) -> Reward | None:
    """By its number in the "quà" list, or by name (with or without diacritics, any part of it)."""
    catalog = rewards.catalog(ctx.session, ctx.now)
    number = query.lstrip("#").strip()
    if number.isdigit():
        index = int(number)
        return catalog[index - 1] if 1 <= index <= len(catalog) else None
    wanted = fold(query)
    exact = [r for r in catalog if fold(r.name) == wanted]
    partial = [r for r in catalog if wanted in fold(r.name)]
    matches = exact or partial
    return matches[0] if matches else None


def _insufficient(name: str, cost: int, balance: int) -> Reply:
    return reply(
        "redeem_insufficient",
        buttons=(buttons.REWARDS,),
        cost=fmt.points(cost),
        reward=name,
        points=fmt.points(balance),
        missing=fmt.points(cost - balance),
    )


def _reward_name(ctx: Context, reward_id: int) -> str:
    reward = ctx.session.get(Reward, reward_id)
    return reward.name if reward else "Quà"
