"""Processing: commit queued batches exactly once, then refresh what caches the committed data."""

from __future__ import annotations

from collections.abc import Sequence

from eventcore.events import IngestBatch
from eventcore.live import stored_batches
from eventcore.ports import AppendResult, CommittedKeys, EventStore, LivePublisher, QueryCache
from eventcore.tenancy import ProjectRef


class BatchProcessor:
    """What a queue consumer does with the batches it holds, before it acknowledges them.

    With ``live``, the events each commit stored of a project the live view watches are
    published after the commit (the append lists them only then: a commit nobody watches costs
    nothing more)."""

    def __init__(
        self,
        store: EventStore,
        committed: CommittedKeys,
        cache: QueryCache,
        live: LivePublisher | None = None,
    ) -> None:
        self._store = store
        self._committed = committed
        self._cache = cache
        self._live = live

    async def process(self, batches: Sequence[IngestBatch]) -> AppendResult:
        """Commit, then record the committed keys and invalidate cached answers.

        The order matters: a key recorded before its commit could make a redelivery after a
        crash look like a duplicate, and the event would be lost.
        """
        if not batches:
            return AppendResult(0, 0)
        watched: frozenset[ProjectRef] = frozenset()
        if self._live is not None:
            watched = await self._live.watched(
                {ProjectRef(batch.workspace_id, batch.project_id) for batch in batches}
            )
        result = await (
            self._store.append(batches, listed=True) if watched else self._store.append(batches)
        )
        if self._live is not None and result.stored:
            # Before anything else is awaited: commits reach the subscribers in their order.
            await self._live.publish(stored_batches(batches, result.stored, watched))
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
