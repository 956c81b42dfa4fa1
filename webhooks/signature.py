"""X-ZEvent-Signature: `mac=` + sha256(app_id + raw body + timestamp + secret), hashed on the raw bytes.

Plain SHA-256 of the concatenation, not HMAC (reference §1.2). The reference is unsure which
secret (OA secret key or app secret) and which id (app_id or oa_id) go first, so every
combination we are configured with is tried, in constant time each.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def compute_signature(first_id: str, raw_body: bytes, timestamp: str, secret: str) -> str:
    # surrogatepass: a body's app_id or timestamp may hold a lone surrogate ("\ud800" in JSON); it must make
    # the signature wrong, not the request fail.
    def b(text: str) -> bytes:
        return text.encode("utf-8", "surrogatepass")

    return hashlib.sha256(b(first_id) + raw_body + b(timestamp) + b(secret)).hexdigest()


def verify_signature(
    raw_body: bytes,
    header: str | None,
    body: dict[str, Any],
    *,
    app_id: str,
    oa_id: str,
    secrets: Iterable[str],
) -> bool:
    """True if `header` signs `raw_body` with one of `secrets`."""
    if not header:
        return False
    got = header.strip()
    got = got[4:] if got.lower().startswith("mac=") else got
    got = got.strip().lower()
    if not _HEX64.fullmatch(got):  # also keeps non-ASCII out of compare_digest, which would raise
        return False
    timestamp = body.get("timestamp")
    if timestamp is None or isinstance(timestamp, dict | list):
        return False
    body_app_id = body.get("app_id")
    first = str(body_app_id) if isinstance(body_app_id, str | int) and body_app_id else app_id
    ids = [i for i in dict.fromkeys([first, oa_id]) if i]
    for first_id in ids:
        for secret in secrets:
            expected = compute_signature(first_id, raw_body, str(timestamp), secret)
            if hmac.compare_digest(expected, got):
                if first_id != ids[0]:
                    log.info("webhook: signature matched with oa_id first")
                return True
    return False
