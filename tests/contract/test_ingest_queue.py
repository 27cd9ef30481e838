"""The IngestQueue contract: a published batch is held whole; a queue that is down takes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventcore.errors import Unavailable
from tests.contract.implementations import QueueKit
from tests.contract.support import T0, at, batch, event


async def test_published_batches_come_out_whole_and_in_order(ingest_queue: QueueKit) -> None:
    """Every published batch is received unchanged, in publish order."""
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

    received = await ingest_queue.receive()

    assert received == published
    assert bytes(received[0].events[0].properties) == bytes(published[0].events[0].properties)


async def test_an_unavailable_queue_refuses_and_keeps_nothing(ingest_queue: QueueKit) -> None:
    """During an outage publish raises Unavailable with a retry hint and nothing is delivered."""
    refused = batch("ws-a", "prj-1", event("lost"))
    async with ingest_queue.outage():
        with pytest.raises(Unavailable) as raised:
            await ingest_queue.queue.publish(refused)
    assert raised.value.retry_after > 0

    accepted = batch("ws-a", "prj-1", event("kept"))
    await ingest_queue.queue.publish(accepted)

    assert await ingest_queue.receive() == [accepted]
