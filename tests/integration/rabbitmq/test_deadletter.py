"""Dead-letter tools: list without consuming, replay with a fresh attempt count."""

from __future__ import annotations

import aiormq
import pytest
from pamqp import commands as spec
from tests.support.rabbitmq import AMQP_URL, numbered_batch, publish_raw, require_rabbitmq

from eventcore.adapters.rabbitmq import DeadLetter, QueueNames, dlq_list, dlq_replay, queue_depth
from eventcore.events import encode_batch

pytestmark = pytest.mark.integration


async def dead_letter(names: QueueNames, number: int, *, events: int = 2) -> None:
    await publish_raw(
        names,
        encode_batch(numbered_batch(number, events, workspace_id=f"ws{number}")),
        {
            "x-attempt": 3,
            "x-attempts": 4,
            "x-last-error": f"boom {number}",
            "x-dead-reason": "retries_exhausted",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
        queue=names.dead_letter,
    )


async def test_listing_leaves_dead_letters_in_place(names: QueueNames) -> None:
    """Listing twice shows the same dead letters: inspecting consumes nothing."""
    for number in range(3):
        await dead_letter(names, number)
    first = await dlq_list(AMQP_URL, names)
    second = await dlq_list(AMQP_URL, names)
    assert len(first) == 3
    assert sorted(first, key=lambda letter: letter.workspace_id or "") == sorted(
        second, key=lambda letter: letter.workspace_id or ""
    )
    assert (
        DeadLetter(
            reason="retries_exhausted",
            attempts=4,
            last_error="boom 0",
            size=len(encode_batch(numbered_batch(0, 2, workspace_id="ws0"))),
            workspace_id="ws0",
            project_id="p1",
            events=2,
        )
        in first
    )


async def test_listing_respects_the_limit(names: QueueNames) -> None:
    """At most ``limit`` dead letters are listed, and all of them stay in the queue."""
    for number in range(4):
        await dead_letter(names, number)
    assert len(await dlq_list(AMQP_URL, names, limit=2)) == 2
    assert len(await dlq_list(AMQP_URL, names, limit=100)) == 4


async def test_listing_a_queue_never_declared_is_empty() -> None:
    """Tools pointed at a topology that does not exist report nothing rather than failing."""
    await require_rabbitmq()
    names = QueueNames("ectest.never-declared")
    assert await dlq_list(AMQP_URL, names) == []
    assert await dlq_replay(AMQP_URL, names) == 0


async def test_replay_moves_messages_to_the_main_queue_with_attempt_zero(names: QueueNames) -> None:
    """Replayed messages leave the dead-letter queue and reach the main queue as fresh batches."""
    for number in range(3):
        await dead_letter(names, number)
    assert await dlq_replay(AMQP_URL, names, limit=2) == 2
    assert len(await dlq_list(AMQP_URL, names)) == 1
    assert await queue_depth(AMQP_URL, names) == 2
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        message = await channel.basic_get(names.main, no_ack=True)
        assert isinstance(message.delivery, spec.Basic.GetOk)
        headers = message.header.properties.headers or {}
        assert headers["x-attempt"] == 0
        assert "x-last-error" not in headers
        assert "x-dead-reason" not in headers
        assert headers["traceparent"].startswith("00-")
        assert message.header.properties.delivery_mode == 2
    finally:
        await connection.close()
    assert await dlq_replay(AMQP_URL, names) == 1
    assert await dlq_list(AMQP_URL, names) == []
