"""Connecting an OA the way Zalo intends: OAuth v4 with PKCE (reference §3).

The owner is sent to `https://oauth.zaloapp.com/v4/oa/permission?app_id=&redirect_uri=&code_challenge=&state=`,
picks the OA, taps "Cho phép", and comes back to `redirect_uri?code=…&oa_id=…&state=…`; the code (10 minutes,
single use) is exchanged with the `code_verifier` at `/v4/oa/access_token` (zalo.client).

One source says the redirect URL and the code challenge must be saved in Zalo's developer console, which then
generates the link, and that a per-request PKCE pair fails at the exchange; chatwoot builds both per request.
Both work with one fixed verifier per installation: the console-saved way needs it fixed, and a self-built link
carrying the same challenge is the link Zalo would generate. So the verifier is derived from the app's secret
key (the same in every process, nothing to store) unless ZALO_CODE_VERIFIER pins one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode


def code_verifier(secret_key: str, pinned: str = "") -> str:
    """43 characters of base64url (PKCE's minimum length; Zalo's SDK uses 43)."""
    if pinned:
        return pinned
    digest = hmac.new(secret_key.encode(), b"tichdiem zalo oa pkce verifier", hashlib.sha256).digest()
    return _b64url(digest)


def code_challenge(verifier: str) -> str:
    """base64url without padding of SHA-256(verifier); Zalo takes no `code_challenge_method`."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def permission_url(oauth_url: str, *, app_id: str, redirect_uri: str, challenge: str, state: str) -> str:
    query = urlencode({"app_id": app_id, "redirect_uri": redirect_uri, "code_challenge": challenge, "state": state})
    return f"{oauth_url.rstrip('/')}/v4/oa/permission?{query}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
