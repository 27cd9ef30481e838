"""Dead-letter tools and queue metrics: inspect the dead-letter queue, replay it, count messages."""

from __future__ import annotations

import aiormq
import msgspec
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from eventcore.adapters.rabbitmq._amqp import (
    AMQP_FAILURES,
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DEAD_REASON_HEADER,
    LAST_ERROR_HEADER,
    carried_headers,
    close_quietly,
    describe,
    header_int,
    header_text,
    open_channel,
    open_connection,
    persistent,
    publish_confirmed,
    unavailable,
)
from eventcore.adapters.rabbitmq._message import decode_message
from eventcore.adapters.rabbitmq._topology import QueueNames
from eventcore.defaults import DEAD_LETTERS_LISTED
from eventcore.errors import InvalidRequest, QueueFull, Unavailable

_TIMEOUT = 10.0


class DeadLetter(msgspec.Struct, frozen=True):
    """A summary of one dead-lettered message.

    ``reason`` is ``retries_exhausted`` or ``undecodable`` (``unknown`` for a message put there
    by something else); ``attempts`` counts the times the handler failed on it. For an
    undecodable message only ``size`` (bytes) is known.
    """

    reason: str
    attempts: int
    last_error: str | None
    size: int
    workspace_id: str | None = None
    project_id: str | None = None
    events: int | None = None


async def dlq_list(
    url: str, names: QueueNames, limit: int = DEAD_LETTERS_LISTED
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters from the head of the queue, left in the queue.

    Each message is taken with Basic.Get and kept unacked until the listing is complete, then
    all are returned with one Basic.Nack (requeue). Caveats: while a listing runs, its messages
    are invisible to a concurrent replay; and a quorum queue puts returned messages back in its
    own order, so the queue's order after a listing may differ from before it (nothing is lost
    or duplicated).
    """
    if limit < 1:
        return []
    connection = await open_connection(url, within=_TIMEOUT)
    try:
        channel = await open_channel(connection, confirms=False, within=_TIMEOUT)
        if await _ready_count(channel, names.dead_letter) is None:
            return []
        letters: list[DeadLetter] = []
        last_tag: int | None = None
        while len(letters) < limit:
            message = await channel.basic_get(names.dead_letter, no_ack=False, timeout=_TIMEOUT)
            if not isinstance(message.delivery, spec.Basic.GetOk):
                break
            last_tag = _tag(message)
            letters.append(_summarise(message))
        if last_tag is not None:
            await channel.basic_nack(last_tag, multiple=True, requeue=True)
        return letters
    except AMQP_FAILURES as exc:
        raise unavailable(f"The dead-letter queue cannot be read: {describe(exc)}") from exc
    finally:
        await close_quietly(connection)


async def dlq_replay(url: str, names: QueueNames, limit: int | None = None) -> int:
    """Move up to ``limit`` (default all) dead letters back to the main queue; returns how many.

    Each one is published to the main queue with ``x-attempt`` 0 and the dead-letter headers
    removed, and acked in the dead-letter queue only after the broker confirmed the publish.
    At most the number of messages present at the start is moved, so a batch that fails again
    and comes back during the replay is not replayed twice. If the main queue refuses a
    message (full, gone), it stays in the dead-letter queue and Unavailable says how many were
    moved before (QueueFull if it is full).
    """
    connection = await open_connection(url, within=_TIMEOUT)
    moved = 0
    try:
        channel = await open_channel(connection, confirms=True, within=_TIMEOUT)
        present = await _ready_count(channel, names.dead_letter)
        if present is None:
            return 0
        budget = present if limit is None else min(present, limit)
        while moved < budget:
            message = await channel.basic_get(names.dead_letter, no_ack=False, timeout=_TIMEOUT)
            if not isinstance(message.delivery, spec.Basic.GetOk):
                break
            tag = _tag(message)
            headers = carried_headers(message.header.properties)
            for name in (LAST_ERROR_HEADER, DEAD_REASON_HEADER, ATTEMPTS_HEADER):
                headers.pop(name, None)
            headers[ATTEMPT_HEADER] = 0
            try:
                await publish_confirmed(
                    channel,
                    message.body,
                    exchange=names.exchange,
                    routing_key=names.main,
                    properties=persistent(headers, message.header.properties.content_type),
                    within=_TIMEOUT,
                )
            except Unavailable as exc:
                if not channel.is_closed:
                    await channel.basic_nack(tag, requeue=True)
                raise unavailable(
                    f"Replay stopped after {moved} messages: {exc.message}",
                    full=isinstance(exc, QueueFull),
                ) from exc
            await channel.basic_ack(tag)
            moved += 1
        return moved
    except AMQP_FAILURES as exc:
        raise unavailable(f"Replay stopped after {moved} messages: {describe(exc)}") from exc
    finally:
        await close_quietly(connection)


async def queue_depth(url_or_channel: str | AbstractChannel, names: QueueNames) -> int:
    """Messages ready in the main queues (delivered but unacked ones are not counted)."""
    if not isinstance(url_or_channel, str):
        return await _main_count(url_or_channel, names)
    connection = await open_connection(url_or_channel, within=_TIMEOUT)
    try:
        channel = await open_channel(connection, confirms=False, within=_TIMEOUT)
        return await _main_count(channel, names)
    finally:
        await close_quietly(connection)


async def _main_count(channel: AbstractChannel, names: QueueNames) -> int:
    return sum([await _declared_count(channel, queue) for queue in names.main_queues])


async def _declared_count(channel: AbstractChannel, queue: str) -> int:
    try:
        declared = await channel.queue_declare(queue, passive=True, timeout=_TIMEOUT)
    except AMQP_FAILURES as exc:
        raise unavailable(f"The queue {queue!r} cannot be inspected: {describe(exc)}") from exc
    return int(declared.message_count or 0)


async def _ready_count(channel: AbstractChannel, queue: str) -> int | None:
    """Ready messages in ``queue``, or None if it does not exist (nothing was ever dead-lettered)."""
    try:
        declared = await channel.queue_declare(queue, passive=True, timeout=_TIMEOUT)
    except aiormq.ChannelNotFoundEntity:
        return None
    return int(declared.message_count or 0)


def _summarise(message: DeliveredMessage) -> DeadLetter:
    headers = message.header.properties.headers or {}
    reason = header_text(headers, DEAD_REASON_HEADER) or "unknown"
    attempts = (
        header_int(headers, ATTEMPTS_HEADER)
        if ATTEMPTS_HEADER in headers
        else header_int(headers, ATTEMPT_HEADER)
    )
    last_error = header_text(headers, LAST_ERROR_HEADER)
    try:
        batches = decode_message(message.body)
    except InvalidRequest:
        return DeadLetter(reason, attempts, last_error, len(message.body))
    # A worker dead-letters one batch per message; a message of several (put there by hand, or
    # undecodable at the time) names a workspace or project only if all its batches share it.
    workspaces = {batch.workspace_id for batch in batches}
    projects = {(batch.workspace_id, batch.project_id) for batch in batches}
    return DeadLetter(
        reason,
        attempts,
        last_error,
        len(message.body),
        workspace_id=next(iter(workspaces)) if len(workspaces) == 1 else None,
        project_id=next(iter(projects))[1] if len(projects) == 1 else None,
        events=sum(len(batch.events) for batch in batches),
    )


def _tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    if tag is None:  # only a Basic.GetEmpty has none, and it is checked for first
        raise RuntimeError("a message without a delivery tag")
    return tag
