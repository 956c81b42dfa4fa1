"""Settings read from environment variables (and a `.env` file when present)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
DEV_SECRET_KEY = "dev-only-secret-change-me"
MIN_SECRET_KEY_LENGTH = 32
QUEUE_NAME = "default"  # the RQ queue every job goes to


class InsecureSettings(RuntimeError):
    """The settings are not safe to serve real customers with; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment. Names match the README's table."""

    database_url: str = f"sqlite:///{INSTANCE_DIR / 'tichdiem.db'}"
    redis_url: str | None = None
    secret_key: str = DEV_SECRET_KEY
    zalo_app_id: str = ""
    zalo_app_secret: str = ""
    zalo_oa_secret_key: str = ""
    zalo_oa_id: str = ""
    zalo_access_token: str = ""
    zalo_refresh_token: str = ""
    zalo_code_verifier: str = ""  # pins the PKCE verifier of "Connect Zalo OA" (default: derived from SECRET_KEY)
    zalo_openapi_url: str = "https://openapi.zalo.me"
    zalo_oauth_url: str = "https://oauth.zaloapp.com"
    zalo_zns_url: str = "https://business.openapi.zalo.me"  # ZBS templates by phone, template info
    timezone: str = "Asia/Ho_Chi_Minh"
    shop_name: str = "Cửa hàng của bạn"
    public_url: str = "http://127.0.0.1:5000"
    shop_logo_url: str = ""  # shown on the share-info card; default: this server's /static/logo.png
    emulator: bool = False  # serve the local Zalo emulator (demo and development only)
    demo: bool = False  # `tichdiem run` without a Zalo account: the emulator and a demo shop on this machine
    trusted_proxies: int = 0  # reverse proxies in front of the app whose X-Forwarded-For/-Proto to believe
    health_token: str = ""  # lets a monitor read /healthz's details without a staff session
    broadcast_senders: int = 4  # sender jobs per broadcast (parts sent in parallel)
    broadcast_in_flight: int = 4  # messages each sender job has on its way to Zalo at once (bench.broadcast: 4 beat 8)
    send_rate: int = 0  # the shop's ceiling for a broadcast, messages/s across its senders; 0: none
    retention_days: int = 90  # raw webhook bodies and message texts (names, phones) are emptied after this
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def embedded_queue(self) -> bool:
        """No REDIS_URL: jobs run on an in-process fake Redis (the demo default)."""
        return not self.redis_url

    @property
    def webhook_secrets(self) -> list[str]:
        """Secrets a webhook signature may be made with.

        The platform reference disagrees on whether Zalo signs with the OA secret key (webhook page)
        or the app secret, so both are accepted; the OA secret key is tried first.
        """
        return [s for s in (self.zalo_oa_secret_key, self.zalo_app_secret) if s]

    @property
    def oa_link(self) -> str:
        """The OA's public link (follow button, QR codes), "" without an OA id."""
        return oa_link(self.zalo_oa_id)

    @property
    def logo_url(self) -> str:
        return self.shop_logo_url or f"{self.public_url.rstrip('/')}/static/logo.png"

    def check_secure(self) -> None:
        """Refuse to serve anything but the local demo with a guessable SECRET_KEY.

        It signs staff sessions and member-card tokens: with the development default (it is in the source)
        anyone could forge an owner login or any member's card.
        """
        if self.demo:
            return
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise InsecureSettings(
                f"SECRET_KEY is {'the development default' if self.secret_key == DEV_SECRET_KEY else 'too short'}: "
                f"set SECRET_KEY to a random value of at least {MIN_SECRET_KEY_LENGTH} characters, e.g. "
                '`python3 -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


def oa_link(oa_id: str | None) -> str:
    return f"https://zalo.me/{oa_id}" if oa_id else ""


_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "secret_key": "SECRET_KEY",
    "zalo_app_id": "ZALO_APP_ID",
    "zalo_app_secret": "ZALO_APP_SECRET",
    "zalo_oa_secret_key": "ZALO_OA_SECRET_KEY",
    "zalo_oa_id": "ZALO_OA_ID",
    "zalo_access_token": "ZALO_ACCESS_TOKEN",
    "zalo_refresh_token": "ZALO_REFRESH_TOKEN",
    "zalo_code_verifier": "ZALO_CODE_VERIFIER",
    "zalo_openapi_url": "ZALO_OPENAPI_URL",
    "zalo_oauth_url": "ZALO_OAUTH_URL",
    "zalo_zns_url": "ZALO_ZNS_URL",
    "timezone": "TIMEZONE",
    "shop_name": "SHOP_NAME",
    "public_url": "PUBLIC_URL",
    "shop_logo_url": "SHOP_LOGO_URL",
    "trusted_proxies": "TRUSTED_PROXIES",
    "health_token": "HEALTH_TOKEN",
    "broadcast_senders": "TICHDIEM_BROADCAST_SENDERS",
    "broadcast_in_flight": "TICHDIEM_BROADCAST_IN_FLIGHT",
    "send_rate": "TICHDIEM_SEND_RATE",
    "retention_days": "TICHDIEM_RETENTION_DAYS",
}
_INT_SETTINGS = {"trusted_proxies", "broadcast_senders", "broadcast_in_flight", "send_rate", "retention_days"}


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Settings:
    """Build Settings from `environ` (default: os.environ) layered over a `.env` file.

    Real environment variables win over the `.env` file, as operators expect.
    """
    env: dict[str, str] = {}
    dotenv_file = dotenv_path or PROJECT_ROOT / ".env"
    if dotenv_file.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {attr: env[name].strip() for attr, name in _ENV_NAMES.items() if env.get(name, "").strip()}
    for name in _INT_SETTINGS & values.keys():
        try:
            values[name] = int(values[name])
        except ValueError:
            raise ValueError(f"{_ENV_NAMES[name]} must be a whole number, not {values[name]!r}") from None
    values["emulator"] = env.get("ZALO_EMULATOR", "").strip().lower() in ("1", "true", "yes", "on")
    settings = Settings(**values)
    settings.tz  # noqa: B018 - fail at start-up on an unknown TIMEZONE, not on the first message
    return settings
