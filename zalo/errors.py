"""Typed errors for Zalo's envelope codes (reference §2.6) and for transport failures."""

from __future__ import annotations


class ZaloError(Exception):
    """A call to Zalo failed. `retryable` says whether trying the same call later can succeed."""

    retryable = False

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {message}")
        self.code = code
        self.message = message


class ZaloTransportError(ZaloError):
    """Timeout, connection error, 5xx or an unreadable body: Zalo may not have seen the call."""

    retryable = True


class ZaloUncertain(ZaloTransportError):
    """The request went out but no usable answer came back (read timeout, a dropped connection, a 5xx or an
    unreadable body): Zalo may have acted on it. Safe calls (a profile, an upload) retry as any transport
    error; a message is never sent again, since Zalo has no idempotency key (the outbox marks it unknown)."""

    uncertain = True


class ZaloTokenError(ZaloError):
    """-216 / -220: the access token is invalid or expired; refresh once and retry."""


class ZaloAuthError(ZaloError):
    """The token could not be refreshed; an admin must grant the OA again. Retried, so a fix can land."""

    retryable = True


class ZaloRateLimited(ZaloError):
    """-32: slow down and retry later."""

    retryable = True


class ZaloNightBan(ZaloError):
    """-234: promotional content is refused 22:00-06:00; retry in the morning."""

    retryable = True


class ZaloOutsideWindow(ZaloError):
    """-230 / -232: no interaction in 7 days; a consultation message cannot reach the user."""


class ZaloUserUnreachable(ZaloError):
    """The user cannot receive this message at all (not following, blocked, banned, restricted)."""


class ZaloAttachmentExpired(ZaloError):
    """-100: an uploaded attachment expired; upload again."""


class ZaloTemplateUidRefused(ZaloError):
    """-249: this template cannot be sent by UID; the phone path can (reference §4, §8)."""


class ZaloTemplateRefused(ZaloError):
    """The template message itself was refused (a bad phone, a parameter Zalo will not take, the template not
    enabled, a user who cannot receive it): sending it again will not help."""


class ZaloOutOfQuota(ZaloError):
    """-211 / -115: the OA's quota or the Zalo Cloud balance ran out; tried again later (the shop tops up)."""

    retryable = True


TOKEN_CODES = frozenset({-216, -220, -124})
_BY_CODE: dict[int, type[ZaloError]] = {
    -32: ZaloRateLimited,
    -100: ZaloAttachmentExpired,
    -213: ZaloUserUnreachable,
    -108: ZaloTemplateRefused,  # bad phone
    -114: ZaloTemplateRefused,  # the user cannot receive it
    -115: ZaloOutOfQuota,  # out of ZBS quota or balance
    -124: ZaloTokenError,  # business.openapi's "access token invalid"
    -133: ZaloNightBan,  # template night restriction
    -211: ZaloOutOfQuota,
    -216: ZaloTokenError,
    -217: ZaloUserUnreachable,
    -220: ZaloTokenError,
    -227: ZaloUserUnreachable,
    -230: ZaloOutsideWindow,
    -232: ZaloOutsideWindow,
    -234: ZaloNightBan,
    -244: ZaloUserUnreachable,
    -249: ZaloTemplateUidRefused,
    -1121: ZaloTemplateRefused,  # a parameter too long
}


def error_for(code: int, message: str) -> ZaloError:
    return _BY_CODE.get(code, ZaloError)(code, message)
