"""The IngestQueue contract: once publish returns, the batch is held whole (queued to be stored,
or, for the inline queue, stored); a queue whose backing service is down refuses, holding
nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventcore.errors import Unavailable
from tests.contract.implementations import QueueKit, holding
from tests.contract.support import T0, at, batch, event


async def test_published_batches_are_held_whole_and_in_order(ingest_queue: QueueKit) -> None:
    """Every event of every published batch is held unchanged with its batch's tenant and
    receipt time, in publish order, and nothing else is."""
    published = [
        batch(
            "ws-a",
            "prj-1",
            event("e1", "signup", at(1, microseconds=5), '{"plan":"pro","ü":[1,null]}'.encode()),
            event("e2", "view", at(2)),
            received_at=T0 + timedelta(microseconds=9),
        ),
        batch("ws-b", "prj-2", event("e1", "view", at(3))),
    ]
    for b in published:
        await ingest_queue.queue.publish(b)

    held = await ingest_queue.held()

    assert held == holding(published)
    assert bytes(held[0].event.properties) == bytes(published[0].events[0].properties)


async def test_an_unavailable_queue_refuses_and_keeps_nothing(ingest_queue: QueueKit) -> None:
    """During an outage publish raises Unavailable with a retry hint and no event of the batch
    is held; once it is over, publishing works again."""
    refused = batch("ws-a", "prj-1", event("lost-1"), event("lost-2"))
    async with ingest_queue.outage():
        with pytest.raises(Unavailable) as raised:
            await ingest_queue.queue.publish(refused)
    assert raised.value.retry_after > 0

    accepted = batch("ws-a", "prj-1", event("kept"))
    await ingest_queue.queue.publish(accepted)

    assert await ingest_queue.held() == holding([accepted])
