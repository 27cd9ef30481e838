"""Export through the library API: pages of stored events, oldest first, checked before the
first page; and the operator's export of the maintenance use case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from eventcore import InvalidRequest, NotFound, ProjectRef
from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import build_memory_platform
from eventcore.events import StoredEvent
from eventcore.platform import Platform
from eventcore.tenancy import Principal

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


async def signed_up(ec: Platform, email: str) -> Principal:
    token = (await ec.accounts.signup(email, "correct horse battery", "Acme")).access_token
    return ec.accounts.authenticate(token)


async def everything(pages: AsyncIterator[list[StoredEvent]]) -> list[StoredEvent]:
    found: list[StoredEvent] = []
    async for page in pages:
        assert page, "no page is empty"
        found += page
    return found


async def test_the_library_exports_every_event_oldest_first_page_by_page() -> None:
    ec = build_memory_platform(clock=ManualClock(NOW))
    me = await signed_up(ec, "me@example.com")
    shop = await ec.accounts.create_project(me, "shop")
    base = NOW - timedelta(hours=5)
    events = [
        {"id": f"e{n}", "type": "view", "timestamp": (base + timedelta(seconds=n)).isoformat()}
        for n in range(2500)
    ]
    # Sent newest first: the export is in time order whatever the arrival order.
    for first in range(0, 2500, 500):
        receipt = await ec.ingestor.submit(
            ProjectRef(me.workspace_id, shop.id), list(reversed(events))[first : first + 500]
        )
        assert receipt.accepted == 500

    exported = await everything(await ec.analytics.export(me, shop.id))
    assert [e.id for e in exported] == [f"e{n}" for n in range(2500)]

    window = await everything(
        await ec.analytics.export(
            me, shop.id, start=base + timedelta(seconds=10), end=base + timedelta(seconds=12)
        )
    )
    assert [e.id for e in window] == ["e10", "e11"]

    operator = await everything(await ec.maintenance.export(me.workspace_id, shop.id))
    assert operator == exported


async def test_an_export_is_refused_before_its_first_page() -> None:
    ec = build_memory_platform(clock=ManualClock(NOW))
    me = await signed_up(ec, "me@example.com")
    shop = await ec.accounts.create_project(me, "shop")
    stranger = await signed_up(ec, "stranger@example.com")

    with pytest.raises(NotFound):
        await ec.analytics.export(stranger, shop.id)
    with pytest.raises(NotFound):
        await ec.maintenance.export(stranger.workspace_id, shop.id)
    with pytest.raises(InvalidRequest, match="start"):
        await ec.analytics.export(me, shop.id, start=NOW, end=NOW)
    with pytest.raises(InvalidRequest, match="event_type"):
        await ec.analytics.export(me, shop.id, event_type="")
