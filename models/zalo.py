"""What we know about Zalo users of the OA and about the OA's API tokens."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import BigId, Model, utcnow


class ZaloUser(Model):
    """A Zalo user who interacted with the OA (follower or not, member or not yet)."""

    __tablename__ = "zalo_users"

    user_id: Mapped[str] = mapped_column(String(32), unique=True)  # OA-scoped UID, a 64-bit string
    user_id_by_app: Mapped[str | None] = mapped_column(String(32))
    is_follower: Mapped[bool] = mapped_column(default=False)
    followed_at: Mapped[datetime | None]
    unfollowed_at: Mapped[datetime | None]
    # Consultation messages only reach users who interacted in the last 7 days (error -230).
    last_interaction_at: Mapped[datetime | None]
    display_name: Mapped[str | None] = mapped_column(String(200))
    avatar_url: Mapped[str | None] = mapped_column(Text)
    profile_fetched_at: Mapped[datetime | None]
    profile_tried_at: Mapped[datetime | None]  # the last user/detail call, failed or not: not one per event
    # When the follower sync last found this user in Zalo's list (user/getlist); followers of the OA from
    # before the bot existed are known only this way.
    follower_seen_at: Mapped[datetime | None]
    info_requested_at: Mapped[datetime | None]  # last request_user_info card sent, to avoid nagging
    pending_referral_code: Mapped[str | None] = mapped_column(String(16))  # "mã ABC123" before registering
    # Guessing claim codes: failures are counted per user and lock claiming for a while.
    failed_claims: Mapped[int] = mapped_column(default=0, server_default="0")
    failed_claims_since: Mapped[datetime | None]
    claims_locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationState(Model):
    """A multi-step chat flow waiting for the user's answer (e.g. "trả lời CÓ để đổi"). Survives restarts."""

    __tablename__ = "conversation_states"

    user_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkStatus(enum.StrEnum):
    PENDING = "pending"
    LINKED = "linked"
    CANCELLED = "cancelled"  # too many wrong codes, or replaced by a newer request


class LinkRequest(Model):
    """A chat user's claim to a member who has no Zalo account yet (imported, or made at the counter).

    A phone typed or shared in the chat is a claim, not a proof: the member is linked only when a cashier
    checks the person at the counter and types the code the chat showed them.
    """

    __tablename__ = "link_requests"

    zalo_user_id: Mapped[str] = mapped_column(String(32), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    code: Mapped[str] = mapped_column(String(12))  # shown in the chat, typed by the cashier
    # The code went to the member's phone as a ZBS template instead: never shown in the chat, and the chat
    # user may type it there (whoever reads that phone's Zalo owns the number).
    by_phone: Mapped[bool] = mapped_column(default=False, server_default="0")
    name: Mapped[str] = mapped_column(String(200), default="")  # what the chat user gave; never overwrites
    birthday: Mapped[date | None]  # fills the member's birthday at linking only if the shop had none
    status: Mapped[str] = mapped_column(String(16), default=LinkStatus.PENDING)
    wrong_codes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))  # "staff:3"


class MediaUpload(Model):
    """Zalo attachment ids by content hash: an unchanged member card is not uploaded again."""

    __tablename__ = "media_uploads"

    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    attachment_id: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class OaToken(Model):
    """The OA's access/refresh token pair. One row; refresh tokens are single-use, so it is the truth."""

    __tablename__ = "oa_tokens"

    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    # Fingerprint of the env pair this row was seeded from: a new pair in the env replaces the row.
    seed_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    refreshed_at: Mapped[datetime | None]
    refresh_count: Mapped[int] = mapped_column(default=0)
    # The refresh token in this row was issued then (seeded or refreshed); Zalo's last about 3 months.
    refresh_token_issued_at: Mapped[datetime | None]
    refresh_failed_at: Mapped[datetime | None]  # the last refresh that failed, while it is the latest word
    refresh_error: Mapped[str | None] = mapped_column(Text)


class SyncStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class FollowerSync(Model):
    """One pass over the OA's follower list (GET /v3.0/oa/user/getlist, 50 a page), resumable at next_offset."""

    __tablename__ = "follower_syncs"

    trigger: Mapped[str] = mapped_column(String(16))  # "first", "daily", "console"
    status: Mapped[str] = mapped_column(String(16), default=SyncStatus.RUNNING, index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # each page: a stalled sync is resumed
    finished_at: Mapped[datetime | None]
    next_offset: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None]  # Zalo's data.total
    seen: Mapped[int] = mapped_column(default=0)
    new_users: Mapped[int] = mapped_column(default=0)
    no_longer_following: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


class ZaloTemplate(Model):
    """An approved ZBS template the shop registered for one purpose, with Zalo's typed parameters and the
    marketer's mapping of each parameter to one of our fields (reference §4: templates are reviewed with
    typed, length-limited parameters; one free-text parameter would not be approved)."""

    __tablename__ = "zalo_templates"

    purpose: Mapped[str] = mapped_column(String(24), unique=True)  # "birthday", "expiry", "tier_up", "broadcast"
    template_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(24), default="")  # Zalo's: ENABLE, PENDING_REVIEW, REJECT, DISABLE
    tag: Mapped[str] = mapped_column(String(24), default="")  # TRANSACTION, CUSTOMER_CARE, PROMOTION
    params: Mapped[list[dict[str, Any]]] = mapped_column(default=list)  # listParams as Zalo sent them
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)  # Zalo parameter -> our field ("ten", "ma"…)
    price_phone: Mapped[int | None]  # đồng per message by phone, as Zalo quotes it
    price_uid: Mapped[int | None]
    uid_refused: Mapped[bool] = mapped_column(default=False)  # -249 seen: by phone only from then on
    fetched_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def usable_template(session: Session, purpose: str) -> ZaloTemplate | None:
    """The shop's template for this purpose if Zalo has it enabled and its parameters are mapped."""
    row = session.scalar(select(ZaloTemplate).where(ZaloTemplate.purpose == purpose))
    return row if row is not None and row.status == "ENABLE" and row.mapping else None
