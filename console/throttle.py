"""Counting failures per key in Redis (fixed window), to throttle guessing: voucher codes, logins."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Throttle:
    def __init__(self, redis: Redis, name: str, limit: int, window_seconds: int) -> None:
        self.redis, self.name, self.limit, self.window = redis, name, limit, window_seconds

    def blocked(self, key: str) -> bool:
        try:
            value = self.redis.get(self._key(key))
        except RedisError:
            log.warning("throttle %s: Redis unavailable, not throttling", self.name)
            return False  # fail open: a Redis outage must not lock the counter
        return value is not None and int(value) >= self.limit

    def failed(self, key: str) -> None:
        try:
            pipe = self.redis.pipeline()
            pipe.incr(self._key(key))
            pipe.expire(self._key(key), self.window, nx=True)
            pipe.execute()
        except RedisError:
            log.warning("throttle %s: Redis unavailable, failure not counted", self.name)

    def over_limit(self, key: str) -> bool:
        """Count one more request for `key`; True once it is past the limit in this window."""
        blocked = self.blocked(key)
        if not blocked:
            self.failed(key)
        return blocked

    def _key(self, key: str) -> str:
        return f"tichdiem:throttle:{self.name}:{key}"


def code_guesses(redis: Redis) -> Throttle:
    """10 unknown voucher or claim codes in 10 minutes per staff member or API key."""
    return Throttle(redis, "voucher", limit=10, window_seconds=600)


def public_pages(redis: Redis) -> Throttle:
    """60 views of the public claim page a minute per client IP: a person scans one code at a time."""
    return Throttle(redis, "public", limit=60, window_seconds=60)


def login_failures(redis: Redis) -> Throttle:
    """20 failed logins in 15 minutes per client IP, whatever the usernames."""
    return Throttle(redis, "login", limit=20, window_seconds=900)


def account_guesses(redis: Redis) -> Throttle:
    """5 wrong passwords for one username from one client IP in 15 minutes.

    Per client, not per account: a stranger guessing the owner's password is stopped, and the owner at the
    shop's own machine can still log in.
    """
    return Throttle(redis, "login-account", limit=5, window_seconds=900)
