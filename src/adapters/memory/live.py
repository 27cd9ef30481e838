"""Stream tickets in memory: one process's (the embedded profile, or an API without Redis)."""

from __future__ import annotations

from datetime import timedelta

from eventcore.live import Ticket
from eventcore.ports import Clock


class MemoryTicketStore:
    """Tickets of one process (the embedded profile, or an API without Redis)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tickets: dict[str, tuple[Ticket, float]] = {}

    async def put(self, ticket_hash: str, ticket: Ticket, ttl_seconds: float) -> None:
        now = self._clock.now()
        # Forget the expired ones as new ones come: the dict stays as small as the live tickets.
        for key in [k for k, (_, until) in self._tickets.items() if until <= now.timestamp()]:
            del self._tickets[key]
        self._tickets[ticket_hash] = (ticket, (now + timedelta(seconds=ttl_seconds)).timestamp())

    async def take(self, ticket_hash: str) -> Ticket | None:
        found = self._tickets.pop(ticket_hash, None)
        if found is None or found[1] <= self._clock.now().timestamp():
            return None
        return found[0]
