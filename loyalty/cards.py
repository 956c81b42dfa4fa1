"""Member card tokens: what the QR code carries. Signed, so they cannot be forged; versioned, so "đổi thẻ"
revokes every earlier card. The token says nothing about the member (no phone, no Zalo id).

Format: ``TD-<member id>-<card version>-<signature>``, letters and digits only besides the dashes, so
a USB scanner that types it into the cashier page produces the same text on every keyboard layout.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from sqlalchemy.orm import Session

from loyalty.codes import ALPHABET
from loyalty.errors import LoyaltyError
from loyalty.locks import lock_member
from models import Member

SIGNATURE_LENGTH = 12  # 60 bits
_TOKEN = re.compile(rf"^TD-(\d{{1,18}})-(\d{{1,9}})-([A-Z0-9]{{{SIGNATURE_LENGTH}}})$")


class InvalidCard(LoyaltyError):
    code = "invalid_card"


class RevokedCard(InvalidCard):
    code = "revoked_card"


def card_token(member: Member, secret: str) -> str:
    return f"TD-{member.id}-{member.card_version}-{_signature(member.id, member.card_version, secret)}"


def member_from_token(session: Session, token: str, secret: str) -> Member:
    """The member a scanned token belongs to. Raises InvalidCard (forged, malformed) or RevokedCard."""
    match = _TOKEN.match(token.strip().upper())
    if match is None:
        raise InvalidCard("not a member card")
    member_id, version, signature = int(match[1]), int(match[2]), match[3]
    if not hmac.compare_digest(signature, _signature(member_id, version, secret)):
        raise InvalidCard("signature does not match")
    member = session.get(Member, member_id)
    if member is None:
        raise InvalidCard("no such member")
    if member.card_version != version:
        raise RevokedCard("this card was replaced by a newer one")
    return member


def rotate_card(session: Session, member_id: int) -> Member:
    """Issue a new card: every earlier token stops working."""
    member = lock_member(session, member_id, allow_blocked=True)
    member.card_version += 1
    return member


def _signature(member_id: int, version: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"member-card:{member_id}:{version}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big")
    return "".join(ALPHABET[(number >> (5 * i)) & 31] for i in range(SIGNATURE_LENGTH))
