"""The live view across processes over Redis pub/sub, and its stream tickets.

A channel per workspace (``<prefix>:{<workspace>}:live``, the workspaces' hash-tag style) carries
the events committed for its projects that somebody watches. An API process with subscribers of
a project keeps the marker ``<prefix>:{<workspace>}:live:<project>`` set (renewed every third of
LIVE_WATCH_SECONDS, expiring after it) and listens to the workspace's channel; a worker asks for
the markers of the projects it commits (through a cache of LIVE_WATCH_CACHE_SECONDS) and
publishes only for a marked one. A commit nobody watches therefore costs no round trip but one
MGET a second per project, and no message.

Pub/sub delivers at most once and keeps nothing: a message sent while an API process is
disconnected is lost for its subscribers, which is what a live view may lose (every stored event
stays in the store). Neither side ever raises to its caller: a failure is logged, counted in
``eventcore_live_publish_failures_total`` (publishing), and retried (listening).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Collection, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from eventcore.adapters.redis.gateway import Client, RedisGateway
from eventcore.defaults import LIVE_WATCH_CACHE_SECONDS, LIVE_WATCH_SECONDS
from eventcore.errors import Unavailable
from eventcore.events import IngestBatch
from eventcore.live import LiveHub, Ticket
from eventcore.tenancy import ProjectRef

log = structlog.get_logger("eventcore.live")

_FAILURES = (RedisError, RedisClusterException, OSError)
_batches = msgspec.json.Decoder(list[IngestBatch])
_encoder = msgspec.json.Encoder()
_tickets = msgspec.json.Decoder(Ticket)


@functools.cache
def _publish_failures() -> Counter:
    """Registered by the first publisher, so that a process that publishes nothing does not
    export it."""
    return Counter(
        "eventcore_live_publish_failures_total",
        "Commits whose stored events could not be published to the live view (Redis did not "
        "take them); the events are stored, the live view's subscribers miss them.",
    )


def _channel(gateway: RedisGateway, workspace_id: str) -> str:
    return gateway.key(workspace_id, "live")


def _marker(gateway: RedisGateway, ref: ProjectRef) -> str:
    return gateway.key(ref.workspace_id, "live", ref.project_id)


class RedisLivePublisher:
    """A worker's (or an API's own commits') LivePublisher. An API process passes its ``hub``:
    a project its own streams watch is known watched at once, without the cache's delay."""

    def __init__(
        self,
        gateway: RedisGateway,
        *,
        cache_seconds: float = LIVE_WATCH_CACHE_SECONDS,
        hub: LiveHub | None = None,
    ) -> None:
        self._gateway = gateway
        self._hub = hub
        self._cache_seconds = cache_seconds
        # Whether each project was watched, and until when (monotonic) that answer holds.
        self._known: dict[ProjectRef, tuple[bool, float]] = {}
        self._failures = _publish_failures()

    async def watched(self, projects: Collection[ProjectRef]) -> frozenset[ProjectRef]:
        now = time.monotonic()
        answer = set()
        unknown = []
        for ref in projects:
            if self._hub is not None and self._hub.watching(ref):
                answer.add(ref)
                continue
            known = self._known.get(ref)
            if known is None or known[1] <= now:
                unknown.append(ref)
            elif known[0]:
                answer.add(ref)
        if unknown:
            keys = [_marker(self._gateway, ref) for ref in unknown]

            async def read(client: Client) -> list[Any]:
                # The markers of several workspaces: several slots of a cluster, so one MGET
                # per slot there.
                if isinstance(client, RedisCluster):
                    return await client.mget_nonatomic(keys)
                found: list[Any] = await client.mget(keys)
                return found

            # Redis unreachable: nobody is taken to watch (and that is remembered as long).
            found = await self._gateway.attempt(read, [None] * len(keys))
            until = now + self._cache_seconds
            if len(self._known) > 10_000:
                self._known = {r: k for r, k in self._known.items() if k[1] > now}
            for ref, value in zip(unknown, found, strict=True):
                self._known[ref] = (value is not None, until)
                if value is not None:
                    answer.add(ref)
        return frozenset(answer)

    async def publish(self, batches: Sequence[IngestBatch]) -> None:
        by_workspace: dict[str, list[IngestBatch]] = {}
        for batch in batches:
            by_workspace.setdefault(batch.workspace_id, []).append(batch)
        if not by_workspace:
            return

        async def send(client: Client) -> bool:
            if isinstance(client, RedisCluster):
                # A cluster pipeline routes by key, and PUBLISH has none: one call each (a
                # node spreads each message to the whole cluster).
                for workspace_id, some in by_workspace.items():
                    await client.publish(
                        _channel(self._gateway, workspace_id), _encoder.encode(some)
                    )
                return True
            async with client.pipeline(transaction=False) as pipe:
                for workspace_id, some in by_workspace.items():
                    pipe.publish(_channel(self._gateway, workspace_id), _encoder.encode(some))
                await pipe.execute()
            return True

        if not await self._gateway.attempt(send, False):
            self._failures.inc()
            log.warning(
                "live.publish_failed",
                workspaces=len(by_workspace),
                events=sum(len(batch.events) for batch in batches),
            )


class RedisLiveWatch:
    """An API process's LiveWatch: one pub/sub connection listening to the channels of the
    workspaces its hub has subscribers in, feeding the hub, and the watched markers renewed.

    One task owns the connection (:meth:`start`, :meth:`close`): it subscribes and unsubscribes
    as asked, reads what arrives, renews the markers, and reconnects after a failure."""

    def __init__(
        self,
        gateway: RedisGateway,
        hub: LiveHub,
        *,
        watch_seconds: float = LIVE_WATCH_SECONDS,
        retry_seconds: float = 1.0,
    ) -> None:
        self._gateway = gateway
        self._hub = hub
        self._watch_seconds = watch_seconds
        self._retry_seconds = retry_seconds
        # The workspaces this process listens to; each (un)subscription asked waits in _asked
        # until the task has sent it (a watch returns only then).
        self._listening: set[str] = set()
        self._asked: list[tuple[str, bool, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="eventcore-live-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, _, done in self._asked:
            if not done.done():
                done.set_result(None)
        self._asked.clear()

    async def watch(self, ref: ProjectRef) -> None:
        """Listen to the workspace's channel (once the subscription is sent, so that every event
        published after this returns reaches the hub), then mark the project watched."""
        if ref.workspace_id not in self._listening:
            self._listening.add(ref.workspace_id)
            done = asyncio.get_running_loop().create_future()
            self._asked.append((ref.workspace_id, True, done))
            self._wake.set()
            # Not longer than a second: a Redis that does not answer must not hold the stream.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), 1.0)
        await self._mark({ref})

    async def unwatch(self, ref: ProjectRef) -> None:
        """Stop listening when no project of the workspace has a subscriber here any more. The
        marker is left to expire: another process may be watching the project too."""
        if any(p.workspace_id == ref.workspace_id for p in self._hub.projects()):
            return
        if ref.workspace_id in self._listening:
            self._listening.discard(ref.workspace_id)
            done = asyncio.get_running_loop().create_future()
            self._asked.append((ref.workspace_id, False, done))
            self._wake.set()

    async def _mark(self, projects: Collection[ProjectRef]) -> None:
        if not projects:
            return

        async def mark(client: Client) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for ref in projects:
                    pipe.set(_marker(self._gateway, ref), b"1", px=int(self._watch_seconds * 1000))
                await pipe.execute()

        await self._gateway.attempt(mark, None)

    async def _run(self) -> None:
        while True:
            pubsub = self._gateway.client.pubsub(ignore_subscribe_messages=True)
            try:
                await self._listen(pubsub)
            except _FAILURES as exc:
                log.warning("live.listen_failed", error=repr(exc), retry_in=self._retry_seconds)
                await asyncio.sleep(self._retry_seconds)
            finally:
                with contextlib.suppress(*_FAILURES):
                    await pubsub.aclose()

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        # A new connection: every workspace listened to is subscribed again.
        self._asked = [(w, True, f) for w, _, f in self._asked if w in self._listening]
        channels = [_channel(self._gateway, w) for w in self._listening]
        if channels:
            await pubsub.subscribe(*channels)
        renew_at = 0.0
        while True:
            while self._asked:
                workspace_id, subscribe, done = self._asked[0]
                channel = _channel(self._gateway, workspace_id)
                if subscribe:
                    await pubsub.subscribe(channel)
                elif workspace_id not in self._listening:
                    await pubsub.unsubscribe(channel)
                self._asked.pop(0)
                if not done.done():
                    done.set_result(None)
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self._watch_seconds / 3
                await self._mark(self._hub.projects())
            if not pubsub.subscribed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._watch_seconds / 3)
                continue
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is not None:
                self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        try:
            batches = _batches.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("live.undecodable_message", channel=channel.decode(errors="replace"))
            return
        # Only the channel's own workspace's events: whatever a message says, a subscriber
        # hears nothing published on another workspace's channel.
        self._hub.deliver(
            batch
            for batch in batches
            if _channel(self._gateway, batch.workspace_id).encode() == channel
        )


class RedisTicketStore:
    """Stream tickets in Redis, so that any API process redeems one (GETDEL: once)."""

    def __init__(self, gateway: RedisGateway) -> None:
        self._gateway = gateway

    def _key(self, ticket_hash: str) -> str:
        return f"{self._gateway.prefix}:live-ticket:{{{ticket_hash}}}"

    async def put(self, ticket_hash: str, ticket: Ticket, ttl_seconds: float) -> None:
        key = self._key(ticket_hash)

        async def put(client: Client) -> bool:
            await client.set(key, _encoder.encode(ticket), px=max(1, int(ttl_seconds * 1000)))
            return True

        if not await self._gateway.attempt(put, False):
            raise Unavailable(
                "Stream tickets cannot be issued now (the shared cache does not answer).",
                code="tickets_unavailable",
            )

    async def take(self, ticket_hash: str) -> Ticket | None:
        key = self._key(ticket_hash)

        async def take(client: Client) -> bytes | str | None:
            found: bytes | str | None = await client.getdel(key)
            return found

        found = await self._gateway.attempt(take, None)
        if found is None:
            return None
        try:
            return _tickets.decode(found)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
