"""The SQLite store: its account, event and deletion parts over one database file."""

from __future__ import annotations

from eventcore.adapters.sqlite._accounts import Accounts
from eventcore.adapters.sqlite._deletions import Deletions
from eventcore.adapters.sqlite._events import Events
from eventcore.adapters.sqlite._generations import Generations


class SqliteStore(Accounts, Events, Deletions, Generations):
    """A :class:`eventcore.ports.Store` in one SQLite file. Create it with :meth:`open`.

    Every failure it reports is an :mod:`eventcore.errors` error (see ``_errors``): a locked or
    failing file is DatabaseUnavailable, a refused record EmailTaken, AlreadyMember or
    AlreadyExists.
    """

    async def ping(self) -> None:
        """Readiness: the database file answers a query."""
        await self._query(tuple, "SELECT 1")
