"""The OA token pair, kept in the database and refreshed single-flight.

Zalo refresh tokens are single-use and rotate: every refresh returns a new pair and the old
refresh token stops working. Two workers refreshing at once would burn the pair and force an
admin to grant the OA again. So a refresh locks the token row, re-reads it, and only calls Zalo
if nobody refreshed since the caller saw its stale token; the new pair is committed before it
is used.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import OaToken, lock_row, utcnow
from zalo.errors import ZaloAuthError, ZaloError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int | None = None  # seconds

    def expires_at(self, now: datetime) -> datetime | None:
        return now + timedelta(seconds=self.expires_in) if self.expires_in else None


Exchange = Callable[[str], TokenPair]
REFRESH_TOKEN_LIFETIME = timedelta(days=90)  # Zalo's refresh tokens last about 3 months (reference §3)
# Every Zalo call needs the access token: read from the database at most this often per process, not once
# per call. A token another process refreshed meanwhile is found on the first -124/-216 (refresh() sees the
# stored token differs from the stale one and hands it over without calling Zalo).
TOKEN_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class TokenStatus:
    expires_at: datetime | None
    refresh_token_issued_at: datetime | None  # None: seeded from the environment, age unknown
    refresh_failed_at: datetime | None
    refresh_error: str | None

    def refresh_token_expires_at(self) -> datetime | None:
        issued = self.refresh_token_issued_at
        return issued + REFRESH_TOKEN_LIFETIME if issued else None


class DatabaseTokenStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        seed: TokenPair | None = None,
        cache_seconds: float = TOKEN_CACHE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._seed = seed if seed and (seed.access_token or seed.refresh_token) else None
        self._local = threading.Lock()  # one refresh per process at a time; the row lock covers processes
        self._cache_seconds = cache_seconds
        self._cached: tuple[str, float] | None = None  # (access token, time.monotonic() it was read)

    def access_token(self) -> str:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[1] < self._cache_seconds:
            return cached[0]
        with self._sessions() as session, session.begin():
            row = self._current(session)
            if row is None:
                raise ZaloAuthError(0, "no OA access token: set ZALO_ACCESS_TOKEN and ZALO_REFRESH_TOKEN")
            return self._remember(row.access_token)

    def _remember(self, access_token: str) -> str:
        self._cached = (access_token, time.monotonic())
        return access_token

    def expires_at(self) -> datetime | None:
        with self._sessions() as session:
            row = session.scalar(select(OaToken).order_by(OaToken.id).limit(1))
            return row.expires_at if row else None

    def refresh(self, stale_access_token: str | None, exchange: Exchange) -> str:
        """Return a fresh access token, calling `exchange(refresh_token)` at most once across workers.

        `stale_access_token` is the token the caller saw fail; None forces a refresh (token keeper).
        """
        with self._local, self._sessions() as session, session.begin():
            row = self._current(session)
            if row is None:
                raise ZaloAuthError(0, "no OA refresh token: set ZALO_REFRESH_TOKEN")
            row = lock_row(session, OaToken, row.id)
            assert row is not None
            if stale_access_token is not None and row.access_token != stale_access_token:
                return self._remember(row.access_token)  # someone else refreshed (or we had an old one)
            try:
                pair = exchange(row.refresh_token)
            except ZaloError as exc:
                failed = exc
            else:
                now = utcnow()
                row.access_token, row.refresh_token = pair.access_token, pair.refresh_token
                row.expires_at = pair.expires_at(now)
                row.refreshed_at = row.refresh_token_issued_at = now
                row.refresh_failed_at, row.refresh_error = None, None
                row.refresh_count += 1
                log.info("zalo: OA token refreshed (refresh #%s)", row.refresh_count)
                self._cached = None  # read again once committed (a failed commit must not leave it cached)
                return pair.access_token
        self._record_failure(failed)
        raise failed

    def store_granted(self, pair: TokenPair) -> None:
        """Keep the pair the OA's admin just granted (Connect Zalo OA): it replaces whatever was stored.

        A pair in the environment stays an override: the row is marked as seeded from the current one, so only
        a newly changed environment pair replaces this grant.
        """
        now = utcnow()
        with self._local, self._sessions() as session, session.begin():
            row = session.scalar(select(OaToken).order_by(OaToken.id).limit(1))
            if row is None:
                row = OaToken(access_token="", refresh_token="")
                session.add(row)
            else:
                row = lock_row(session, OaToken, row.id)
                assert row is not None
            row.access_token, row.refresh_token = pair.access_token, pair.refresh_token
            row.expires_at = pair.expires_at(now)
            row.refreshed_at = row.refresh_token_issued_at = now
            row.refresh_failed_at, row.refresh_error = None, None
            row.seed_fingerprint = _fingerprint(self._seed) if self._seed else ""
        self._cached = None

    def _record_failure(self, exc: ZaloError) -> None:
        """Kept for health and the owner's banner until a refresh succeeds: an OA whose grant lapsed stops
        answering anyone, and only the owner can grant it again."""
        log.error("zalo: OA token refresh failed: %s", exc)
        with self._sessions() as session, session.begin():
            row = session.scalar(select(OaToken).order_by(OaToken.id).limit(1))
            if row is not None:
                row.refresh_failed_at, row.refresh_error = utcnow(), str(exc)[:2000]

    def status(self) -> TokenStatus | None:
        """What health reports: None when no pair is configured at all."""
        with self._sessions() as session, session.begin():
            row = self._current(session)  # a pair in the environment is stored first
            if row is None:
                return None
            return TokenStatus(row.expires_at, row.refresh_token_issued_at, row.refresh_failed_at, row.refresh_error)

    def _current(self, session: Session) -> OaToken | None:
        row = session.scalar(select(OaToken).order_by(OaToken.id).limit(1))
        if self._seed is None:
            return row
        fingerprint = _fingerprint(self._seed)
        if row is None:
            row = OaToken(
                access_token=self._seed.access_token,
                refresh_token=self._seed.refresh_token,
                seed_fingerprint=fingerprint,
            )
            session.add(row)
            session.flush()
        elif row.seed_fingerprint != fingerprint:
            # An operator put a newly granted pair in the environment: it replaces the stored one.
            log.warning("zalo: token pair in the environment changed; replacing the stored pair")
            row.access_token, row.refresh_token = self._seed.access_token, self._seed.refresh_token
            row.seed_fingerprint, row.expires_at = fingerprint, None
        return row


def _fingerprint(pair: TokenPair) -> str:
    return hashlib.sha256(f"{pair.access_token}\n{pair.refresh_token}".encode()).hexdigest()
