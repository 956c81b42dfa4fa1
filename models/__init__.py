"""SQLAlchemy 2 typed models. Importing this package registers every table on Base.metadata."""

from models.base import Base, Model, insert_ignore, lock_row, rows_updated, utcnow
from models.counter import ApiKey, AuditLog, Claim, ClaimStatus, Role, Staff
from models.events import EventStatus, WebhookEvent
from models.loyalty import (
    ActorType,
    EntryKind,
    LedgerEntry,
    LotDraw,
    Member,
    MemberStatus,
    PointLot,
    ProgramSettings,
    Reward,
    Store,
    Tier,
    TierEvent,
    Voucher,
    VoucherStatus,
)
from models.marketing import Broadcast, BroadcastStatus, ImportStatus, MemberImport
from models.outbox import OutboxMessage, OutboxStatus
from models.zalo import ConversationState, LinkRequest, LinkStatus, MediaUpload, OaToken, ZaloUser

__all__ = [
    "ActorType",
    "ApiKey",
    "Broadcast",
    "BroadcastStatus",
    "ImportStatus",
    "MemberImport",
    "AuditLog",
    "Claim",
    "ClaimStatus",
    "Role",
    "Staff",
    "ConversationState",
    "MediaUpload",
    "LinkRequest",
    "LinkStatus",
    "EntryKind",
    "LedgerEntry",
    "LotDraw",
    "Member",
    "MemberStatus",
    "PointLot",
    "ProgramSettings",
    "Reward",
    "Store",
    "Tier",
    "TierEvent",
    "Voucher",
    "VoucherStatus",
    "Base",
    "EventStatus",
    "Model",
    "OaToken",
    "OutboxMessage",
    "OutboxStatus",
    "WebhookEvent",
    "ZaloUser",
    "insert_ignore",
    "lock_row",
    "rows_updated",
    "utcnow",
]
