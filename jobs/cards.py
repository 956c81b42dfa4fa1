"""Sending member cards: draw the PNG, upload it once per distinct content, send it as an image message.

Zalo keeps uploads for about 7 days (then answers -100), so an upload is reused for 6 days and a
-100 on send forgets it, uploads again and sends once more.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.card_image import CardFace, StampFace, render_card, render_stamp_card
from loyalty import format as fmt
from loyalty.cards import card_token
from models import MediaUpload, Member, Reward, StampCard, Tier, insert_ignore, utcnow
from zalo.client import ZaloClient
from zalo.errors import ZaloAttachmentExpired
from zalo.messages import image_message

log = logging.getLogger(__name__)
UPLOAD_REUSE = timedelta(days=6)


class CardPublisher:
    def __init__(
        self, sessions: sessionmaker[Session], zalo: ZaloClient, *, secret: str, shop_name: Callable[[], str]
    ) -> None:
        self.sessions = sessions
        self.zalo = zalo
        self.secret = secret
        self.shop_name = shop_name  # read when a card is drawn: the owner may rename the shop

    def send(self, user_id: str, payload: dict[str, Any]) -> str:
        """Send the card an outbox payload describes, {"member_id", "caption"} for a member card or
        {"stamp_card_id", "stamps", "caption"} for a stamp card; returns Zalo's message_id."""
        if "stamp_card_id" in payload:
            png, filename = self.render_stamps(int(payload["stamp_card_id"]), int(payload["stamps"])), "the-tem.png"
        else:
            png, filename = self.render(int(payload["member_id"])), "the-thanh-vien.png"
        caption = str(payload.get("caption", ""))
        try:
            return self.zalo.send_message(user_id, image_message(self.attachment_for(png, filename), caption))
        except ZaloAttachmentExpired:
            log.info("cards: Zalo forgot the uploaded card, uploading again")
            self.forget(png)
            return self.zalo.send_message(user_id, image_message(self.attachment_for(png, filename), caption))

    def render(self, member_id: int) -> bytes:
        with self.sessions() as session:
            member = session.get(Member, member_id)
            if member is None:
                raise LookupError(f"member {member_id} not found")
            tier = session.get(Tier, member.tier_id) if member.tier_id else None
            face = CardFace(
                shop_name=self.shop_name(),
                member_name=member.name,
                tier_name=tier.name if tier else "—",
                points=fmt.points(member.points_balance),
                member_code=member.code,
                token=card_token(member, self.secret),
            )
        return render_card(face)

    def render_stamps(self, stamp_card_id: int, stamps: int) -> bytes:
        with self.sessions() as session:
            card = session.get(StampCard, stamp_card_id)
            if card is None:
                raise LookupError(f"stamp card {stamp_card_id} not found")
            reward = session.get(Reward, card.reward_id)
            face = StampFace(
                shop_name=self.shop_name(),
                card_name=card.name,
                stamps=min(stamps, card.stamps_needed),
                needed=card.stamps_needed,
                reward_name=reward.name if reward else "",
            )
        return render_stamp_card(face)

    def attachment_for(self, png: bytes, filename: str = "the-thanh-vien.png") -> str:
        fingerprint = hashlib.sha256(png).hexdigest()
        with self.sessions() as session, session.begin():
            cached = session.scalar(select(MediaUpload).where(MediaUpload.fingerprint == fingerprint))
            if cached is not None and cached.uploaded_at > utcnow() - UPLOAD_REUSE:
                return cached.attachment_id
            if cached is not None:
                session.delete(cached)
        attachment_id = self.zalo.upload_image(png, filename=filename)
        with self.sessions() as session, session.begin():
            insert_ignore(
                session,
                MediaUpload,
                {"fingerprint": fingerprint, "attachment_id": attachment_id, "uploaded_at": utcnow()},
                ["fingerprint"],
            )
        return attachment_id

    def forget(self, png: bytes) -> None:
        with self.sessions() as session, session.begin():
            session.execute(delete(MediaUpload).where(MediaUpload.fingerprint == hashlib.sha256(png).hexdigest()))
