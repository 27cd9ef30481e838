"""Processing: commit queued batches exactly once, then refresh what caches the committed data."""

from __future__ import annotations

from collections.abc import Sequence

from eventcore.events import IngestBatch
from eventcore.ports import AppendResult, CommittedKeys, EventStore, QueryCache


class BatchProcessor:
    """What a queue consumer does with the batches it holds, before it acknowledges them."""

    def __init__(self, store: EventStore, committed: CommittedKeys, cache: QueryCache) -> None:
        self._store = store
        self._committed = committed
        self._cache = cache

    async def process(self, batches: Sequence[IngestBatch]) -> AppendResult:
        """Commit, then record the committed keys and invalidate cached answers.

        The order matters: a key recorded before its commit could make a redelivery after a
        crash look like a duplicate, and the event would be lost.
        """
        if not batches:
            return AppendResult(0, 0)
        result = await self._store.append(batches)
        await self._committed.remember(batches)
        if result.inserted:
            await self._cache.bump({batch.workspace_id for batch in batches})
        return result


class InlineQueue:
    """A queue that processes on publish: when it returns, the batch is committed.

    This is the embedded profile's queue; the answer to the client then means "stored".
    """

    def __init__(self, processor: BatchProcessor) -> None:
        self._processor = processor

    async def publish(self, batch: IngestBatch) -> None:
        await self._processor.process([batch])
