"""An in-process queue that holds batches for tests (the embedded queue is ``InlineQueue``)."""

from __future__ import annotations

from eventcore.errors import QueueUnavailable
from eventcore.events import IngestBatch


class MemoryQueue:
    """Holds published batches until a test drains them; can be switched off to refuse publishes."""

    def __init__(self) -> None:
        self.batches: list[IngestBatch] = []
        self.available = True

    async def publish(self, batch: IngestBatch) -> None:
        await self.ping()
        self.batches.append(batch)

    async def ping(self) -> None:
        if not self.available:
            raise QueueUnavailable("The queue is unavailable.", retry_after=1)

    def take(self) -> list[IngestBatch]:
        taken, self.batches = self.batches, []
        return taken
