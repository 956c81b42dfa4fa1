"""Cron: raw copies of personal data are kept only as long as needed (loyalty/privacy.prune_raw_data)."""

from __future__ import annotations

import logging

from jobs.context import current_services
from loyalty.privacy import prune_raw_data
from models import utcnow

log = logging.getLogger(__name__)


def prune_personal_data() -> dict[str, int]:
    """Daily: empty webhook bodies and message texts older than RETENTION_DAYS, drop applied uploads."""
    context = current_services()
    with context.sessions() as session:
        pruned = prune_raw_data(session, utcnow(), context.settings.retention_days)
        session.commit()
    if any(pruned.values()):
        log.info("privacy: pruned %s", pruned)
    return pruned
