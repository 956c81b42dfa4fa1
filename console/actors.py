"""Who acts at the counter or in the console: a logged-in staff member or a POS API key, and where."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty import ledger


@dataclass(frozen=True)
class CounterActor:
    """Who acts at the counter: a logged-in staff member or a POS API key, and where."""

    actor: str  # "staff:3" | "api:7"
    staff_id: int | None = None
    store_id: int | None = None
    is_owner: bool = False
    ip: str | None = None

    @property
    def ledger_actor(self) -> ledger.Actor:
        return ledger.Actor("staff", self.actor)
