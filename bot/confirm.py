"""Questions answered with "CÓ" / "KHÔNG" ("trả lời CÓ để đổi"): reading the answer and closing the question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.router import Context
from bot.state import clear_state, step_token
from bot.text import fold

YES = ("có", "co", "ok", "yes", "đồng ý", "xác nhận", "đổi luôn")
NO = ("không", "khong", "ko", "no", "hủy", "thôi", "không đổi")
_YES, _NO = frozenset(fold(w) for w in YES), frozenset(fold(w) for w in NO)


@dataclass(frozen=True)
class Answer:
    kind: str  # yes | no | other (a new command: the question is dropped and the text routed normally)
    data: dict[str, Any]
    token: str | None  # the question's own token: the idempotency key of what "yes" does


def answer(ctx: Context) -> Answer:
    """The user's answer to their pending question, which is closed whatever it was. Keyed by the question's
    token, a retried job or a second tap on CÓ cannot act twice, and the next question has a new one."""
    state, user = ctx.state, ctx.user
    assert state is not None and user is not None
    folded = fold(ctx.text)
    kind = "yes" if folded in _YES else "no" if folded in _NO else "other"
    data, token = dict(state.data), step_token(state)
    clear_state(ctx.session, user.user_id)
    return Answer(kind, data, token)
