"""HTTP client for the Zalo OA Open API: timeouts, the error envelope, and token refresh."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from zalo.errors import ZaloAuthError, ZaloError, ZaloTokenError, ZaloTransportError, ZaloUncertain, error_for
from zalo.tokens import Exchange, TokenPair

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds
FOLLOWER_PAGE = 50  # user/getlist's largest page
MAX_FOLLOWER_OFFSET = 9951  # and its largest offset


@dataclass(frozen=True)
class Quota:
    remain: int
    total: int


class TokenStore(Protocol):
    def access_token(self) -> str: ...

    def refresh(self, stale_access_token: str | None, exchange: Exchange) -> str: ...


class ZaloClient:
    """One client per process; thread-safe as long as the token store is."""

    def __init__(
        self,
        *,
        tokens: TokenStore,
        app_id: str,
        app_secret: str,
        openapi_url: str = "https://openapi.zalo.me",
        oauth_url: str = "https://oauth.zaloapp.com",
        zns_url: str = "https://business.openapi.zalo.me",
        http: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.tokens = tokens
        self.app_id = app_id
        self.app_secret = app_secret
        self.openapi_url = openapi_url.rstrip("/")
        self.oauth_url = oauth_url.rstrip("/")
        self.zns_url = zns_url.rstrip("/")
        self.http = http or http_session()
        self.timeout = timeout

    # --- messages -------------------------------------------------------------------------------

    def send_message(self, user_id: str, message: dict[str, Any]) -> str:
        """POST /v3.0/oa/message/cs; returns Zalo's message_id."""
        data = self.call("POST", "/v3.0/oa/message/cs", json={"recipient": {"user_id": user_id}, "message": message})
        return str(data.get("message_id", ""))

    def send_template(self, user_id: str, template_id: str, data: dict[str, Any]) -> str:
        """POST /v3.0/oa/message/template: an approved ZBS template by UID (reaches users outside the window)."""
        body = {"user_id": user_id, "template_id": template_id, "template_data": data}
        return str(self.call("POST", "/v3.0/oa/message/template", json=body).get("message_id", ""))

    def send_template_by_phone(self, phone: str, template_id: str, data: dict[str, str], tracking_id: str) -> str:
        """POST {zns}/message/template: an approved ZBS template to a phone ("84…"), no Zalo UID needed.

        `tracking_id` (≤ 48 characters) comes back in the delivery receipt."""
        body = {"phone": phone, "template_id": template_id, "template_data": data, "tracking_id": tracking_id[:48]}
        result = self.call("POST", "/message/template", json=body, base=self.zns_url)
        return str(result.get("msg_id") or result.get("message_id") or "")

    def template_info(self, template_id: str) -> dict[str, Any]:
        """GET {zns}/template/info/v2?template_id=: name, status, tag, typed listParams and prices."""
        return self.call("GET", "/template/info/v2", params={"template_id": template_id}, base=self.zns_url)

    def user_detail(self, user_id: str) -> dict[str, Any]:
        """GET /v3.0/oa/user/detail?data={"user_id": ...}."""
        return self.call("GET", "/v3.0/oa/user/detail", params={"data": json.dumps({"user_id": user_id})})

    def followers(self, offset: int, count: int = FOLLOWER_PAGE) -> tuple[int, list[str]]:
        """GET /v3.0/oa/user/getlist?data={"offset","count","is_follower":true}: (Zalo's total, this page's ids).

        At most 50 a page and an offset of at most 9,951 (reference §2.4), so the list reaches 10,000."""
        query = {"offset": offset, "count": min(count, FOLLOWER_PAGE), "is_follower": True}
        data = self.call("GET", "/v3.0/oa/user/getlist", params={"data": json.dumps(query)})
        users = data.get("users")
        ids = [str(u["user_id"]) for u in users or () if isinstance(u, dict) and u.get("user_id")]
        return _int(data.get("total"), 0), ids

    def message_quota(self) -> Quota | None:
        """POST /v3.0/oa/quota/message for the OA's consultation-message quota from its package.

        The body follows an integration that calls it ({"quota_owner": "OA", "product_type": "cs",
        "quota_type": "sub_quota"}); the answer's shape is not documented (reference §2.5, UNCERTAIN): `data`
        as one object or a list of quota assets, each with `total` and `remain`. None if neither is there."""
        body = {"quota_owner": "OA", "product_type": "cs", "quota_type": "sub_quota"}
        data = self.call_raw("POST", "/v3.0/oa/quota/message", json=body)
        assets = data if isinstance(data, list) else [data]
        counted = [a for a in assets if isinstance(a, dict) and "remain" in a]
        if not counted:
            return None
        return Quota(sum(_int(a.get("remain"), 0) for a in counted), sum(_int(a.get("total"), 0) for a in counted))

    def upload_image(self, content: bytes, filename: str = "image.png", mimetype: str = "image/png") -> str:
        """POST /v2.0/oa/upload/image (jpg/png, at most 1 MB); returns the attachment_id."""
        data = self.call("POST", "/v2.0/oa/upload/image", files={"file": (filename, content, mimetype)})
        return str(data["attachment_id"])

    # --- plumbing --------------------------------------------------------------------------------

    def call(self, method: str, path: str, base: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call the OpenAPI (or `base`: the ZBS host) with the OA token; `data` of the answer as an object."""
        data = self.call_raw(method, path, base, **kwargs)
        return data if isinstance(data, dict) else {}

    def call_raw(self, method: str, path: str, base: str | None = None, **kwargs: Any) -> Any:
        """`data` of the answer as Zalo sent it. On -216/-220/-124 the token is refreshed once and the call
        retried once."""
        url = f"{base or self.openapi_url}{path}"
        token = self.tokens.access_token()
        try:
            return self._request(method, url, token, **kwargs)
        except ZaloTokenError as exc:
            log.info("zalo: %s on %s, refreshing the OA token", exc.code, path)
            token = self.tokens.refresh(token, self.exchange_refresh_token)
            return self._request(method, url, token, **kwargs)

    def exchange_refresh_token(self, refresh_token: str) -> TokenPair:
        """POST {oauth}/v4/oa/access_token with grant_type=refresh_token (form body, secret_key header)."""
        return self._token_request({"refresh_token": refresh_token, "grant_type": "refresh_token"}, "token refresh")

    def exchange_code(self, code: str, verifier: str) -> TokenPair:
        """The OA permission page's code (10 minutes, single use) for a token pair: same endpoint, with
        grant_type=authorization_code and the PKCE verifier whose challenge the link carried."""
        data = {"code": code, "grant_type": "authorization_code", "code_verifier": verifier}
        return self._token_request(data, "code exchange")

    def _token_request(self, data: dict[str, str], what: str) -> TokenPair:
        try:
            response = self.http.post(
                f"{self.oauth_url}/v4/oa/access_token",
                data={**data, "app_id": self.app_id},
                headers={"secret_key": self.app_secret},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ZaloTransportError(0, f"{what} failed: {exc}") from exc
        body = _json_body(response)
        if not body.get("access_token") or not body.get("refresh_token"):
            code = _int(body.get("error"), -1)
            raise ZaloAuthError(code, f"{what} refused: {body.get('error_name') or body.get('message') or body}")
        return TokenPair(str(body["access_token"]), str(body["refresh_token"]), _int(body.get("expires_in"), 0) or None)

    def _request(self, method: str, url: str, token: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, url, headers={"access_token": token}, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise _transport_error(exc, f"{method} {url.split('?')[0]}") from exc
        body = _json_body(response)
        code = _int(body.get("error"), 0)
        if code != 0:  # Zalo answers errors with HTTP 200 and a non-zero `error`
            raise error_for(code, str(body.get("message", "")))
        return body.get("data")


def http_session() -> requests.Session:
    """A requests Session for Zalo. With trust_env, requests scans the whole environment and ~/.netrc on every
    call (a sixth of a reply's CPU); only proxy settings need that (with their NO_PROXY rules), so it stays on
    only where a proxy is configured. A CA bundle named in the environment is read once."""
    session = requests.Session()
    # Broadcast senders keep several calls in flight from one process: keep that many connections alive.
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = bool(urllib.request.getproxies())
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def _transport_error(exc: requests.RequestException, what: str) -> ZaloTransportError:
    """Certainly not sent (no connection was made) → retryable; otherwise Zalo may have it → uncertain."""
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return ZaloTransportError(0, f"{what}: not sent: {exc}")
    cause = "timeout" if isinstance(exc, requests.Timeout) else "connection lost"
    return ZaloUncertain(0, f"{what}: {cause} after sending: {exc}")


def _never_connected(exc: requests.RequestException) -> bool:
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the real cause
    return isinstance(reason, NewConnectionError | NameResolutionError)


def _json_body(response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 500:
        # A gateway timing out (504) or Zalo's own JSON answer may come after Zalo acted: uncertain. An empty
        # body or a gateway's page (503 "down") means the API never took the call: try again.
        if response.status_code == 504 or _is_json(response):
            raise ZaloUncertain(response.status_code, f"HTTP {response.status_code} from Zalo")
        raise ZaloTransportError(response.status_code, f"HTTP {response.status_code} from Zalo, not processed")
    try:
        body = response.json()
    except ValueError as exc:
        raise ZaloUncertain(response.status_code, f"HTTP {response.status_code}, body is not JSON") from exc
    if not isinstance(body, dict):
        raise ZaloError(response.status_code, "unexpected JSON from Zalo")
    return body


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
