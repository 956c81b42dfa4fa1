"""Giving points to a cause in the chat: "ủng hộ" lists the causes with their progress, "ủng hộ 50" asks for a
"CÓ" and gives 50 points ("ủng hộ 50 số 2" when the shop runs several)."""

from __future__ import annotations

import re
from datetime import timedelta

from bot import buttons, confirm
from bot.handlers.membership import members_only
from bot.replies import Reply, reply
from bot.router import Bot, Context
from bot.state import set_state
from loyalty import charity
from loyalty import format as fmt
from loyalty.errors import InsufficientPoints, MemberBlocked
from models import Cause

CONFIRM_DONATE = "confirm_donate"
CONFIRM_TTL = timedelta(minutes=10)
_NUMBER = re.compile(r"\d[\d.]*")


def register(bot: Bot) -> None:
    bot.on_step(CONFIRM_DONATE)(on_confirm_step)
    bot.command("ủng hộ", "quyên góp", "từ thiện", "donate")(members_only(on_donate))


def on_donate(ctx: Context) -> list[Reply]:
    member, user = ctx.member, ctx.user
    assert member is not None and user is not None
    causes = charity.open_causes(ctx.session, ctx.now.astimezone(ctx.config.tz).date())
    if not causes:
        return [reply("charity_none", shop_name=ctx.shop_name)]
    numbers = [int(n.replace(".", "")) for n in _NUMBER.findall(ctx.args)][:2]
    if not numbers:
        return [_listing(ctx, causes)]
    points = numbers[0]
    if len(numbers) > 1:
        cause = causes[numbers[1] - 1] if 1 <= numbers[1] <= len(causes) else None
    else:
        cause = causes[0] if len(causes) == 1 else None
    if cause is None or not 0 < points <= charity.MAX_DONATION:
        return [_listing(ctx, causes)]
    if points > member.points_balance:
        return [reply("charity_insufficient", points=fmt.points(points), balance=fmt.points(member.points_balance))]
    set_state(ctx.session, user.user_id, CONFIRM_DONATE, {"cause_id": cause.id, "points": points}, ctx.now, CONFIRM_TTL)
    return [
        reply(
            "charity_confirm",
            buttons=(buttons.YES, buttons.NO),
            points=fmt.points(points),
            vnd=fmt.vnd(points * ctx.rules.point_value_vnd),
            cause=cause.name,
        )
    ]


def on_confirm_step(ctx: Context) -> list[Reply] | None:
    """The answer to "trả lời CÓ để ủng hộ": yes gives the points (once: keyed by the question), no cancels."""
    said = confirm.answer(ctx)
    if said.kind == "no":
        return [reply("charity_cancelled")]
    if said.kind == "other":
        return None
    cause_id, points, token = int(said.data["cause_id"]), int(said.data["points"]), said.token
    member, user = ctx.member, ctx.user
    if member is None or user is None or token is None:
        return [reply("nothing_pending")]
    today = ctx.now.astimezone(ctx.config.tz).date()
    try:
        result = charity.donate(
            ctx.session,
            member.id,
            cause_id,
            points,
            key=f"chat-donate:{user.user_id}:{token}",
            now=ctx.now,
            today=today,
        )
    except InsufficientPoints as exc:
        return [reply("charity_insufficient", points=fmt.points(points), balance=fmt.points(exc.balance))]
    except charity.CauseClosed:
        return [reply("charity_none", shop_name=ctx.shop_name)]
    except MemberBlocked:
        return [reply("blocked")]
    cause = ctx.session.get(Cause, cause_id)
    assert cause is not None
    progress = charity.progress(ctx.session, cause)
    return [
        reply(
            "charity_done",
            buttons=(buttons.BALANCE,),
            points=fmt.points(points),
            vnd=fmt.vnd(points * ctx.rules.point_value_vnd),
            cause=cause.name,
            **_figures(progress),
            shop_name=ctx.shop_name,
            balance=fmt.points(result.balance),
        )
    ]


def _listing(ctx: Context, causes: list[Cause]) -> Reply:
    rows = [
        {"number": n, "name": c.name, **_figures(charity.progress(ctx.session, c))}
        for n, c in enumerate(causes, start=1)
    ]
    return reply(
        "charity_list",
        shop_name=ctx.shop_name,
        causes=rows,
        several=len(causes) > 1,
        point_value=fmt.vnd(ctx.rules.point_value_vnd),
    )


def _figures(progress: charity.CauseProgress) -> dict[str, object]:
    goal = progress.cause.goal_points
    return {
        "bar": progress.bar() if goal else "",
        "total": fmt.points(progress.total),
        "goal": fmt.points(goal) if goal else None,
        "percent": progress.percent,
        "donors": fmt.points(progress.donors),
        "matched": fmt.points(progress.matched) if progress.matched else None,
    }
