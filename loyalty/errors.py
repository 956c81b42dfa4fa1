"""Typed domain errors. Each carries a stable `code` the bot, counter and API map to their own words."""

from __future__ import annotations

from datetime import datetime


class LoyaltyError(Exception):
    code = "loyalty_error"


class InvalidAmount(LoyaltyError):
    code = "invalid_amount"


class MemberNotFound(LoyaltyError):
    code = "member_not_found"


class MemberBlocked(LoyaltyError):
    code = "member_blocked"


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"

    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(f"balance {balance} < {needed}")
        self.balance = balance
        self.needed = needed


class NotReversible(LoyaltyError):
    code = "not_reversible"


class AlreadyReversed(NotReversible):
    code = "already_reversed"


class PaymentRefused(LoyaltyError):
    """Points cannot pay this bill. reason: off | min_balance | over_limit | insufficient | invalid"""

    code = "payment_refused"

    def __init__(self, reason: str, limit: int = 0) -> None:
        super().__init__(f"{reason} {limit}".strip())
        self.reason = reason
        self.limit = limit  # the most points that could pay (over_limit, insufficient) or the minimum balance


class RewardUnavailable(LoyaltyError):
    """reason: inactive | not_started | ended | out_of_stock | tier | limit"""

    code = "reward_unavailable"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} {detail}".strip())
        self.reason = reason
        self.detail = detail


class VoucherError(LoyaltyError):
    code = "voucher_error"


class VoucherNotFound(VoucherError):
    code = "voucher_not_found"


class VoucherExpired(VoucherError):
    code = "voucher_expired"


class VoucherUsed(VoucherError):
    code = "voucher_used"


class VoucherCancelled(VoucherError):
    code = "voucher_cancelled"


class VoucherWrongMember(VoucherError):
    code = "voucher_wrong_member"


class ReferralRefused(LoyaltyError):
    """reason: unknown_code | self | loop | already_referred | already_purchased"""

    code = "referral_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSettings(LoyaltyError):
    code = "invalid_settings"


class PhoneTaken(LoyaltyError):
    """The phone belongs to a member linked to another Zalo account."""

    code = "phone_taken"


class ClaimError(LoyaltyError):
    code = "claim_error"


class ClaimNotFound(ClaimError):
    code = "claim_not_found"


class ClaimExpired(ClaimError):
    code = "claim_expired"


class ClaimUsed(ClaimError):
    code = "claim_used"


class PhoneNeedsProof(LoyaltyError):
    """The phone is a member's who has no Zalo account yet: a chat user must prove it is theirs first."""

    code = "phone_needs_proof"

    def __init__(self, member_id: int) -> None:
        super().__init__(str(member_id))
        self.member_id = member_id


class LinkRefused(LoyaltyError):
    """reason: no_request | wrong_code | expired | taken | locked"""

    code = "link_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateBill(LoyaltyError):
    """This store already credited points for this bill number (and did not refund them)."""

    code = "duplicate_bill"

    def __init__(self, bill_ref: str, credited_at: datetime) -> None:
        super().__init__(f"bill {bill_ref} was already credited")
        self.bill_ref = bill_ref
        self.credited_at = credited_at


class KeyReused(LoyaltyError):
    """An idempotency key that already did something else (another member's bill): refused, nothing written."""

    code = "idempotency_conflict"
