"""The ingest queue's message format: batches in a JSON array, each with its trace context."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventcore.adapters.rabbitmq._message import (
    batch_headers,
    decode_message,
    encode_message,
    frame,
    part_headers,
)
from eventcore.errors import InvalidRequest
from eventcore.events import encode_batch
from tests.support.rabbitmq import batch, numbered_batch

TP1 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8))
def test_a_message_decodes_to_its_batches_in_order(numbers: list[int]) -> None:
    batches = [numbered_batch(n, events=1 + n % 3, workspace_id=f"ws{n % 2}") for n in numbers]
    body = encode_message(batches)
    assert body == frame([encode_batch(b) for b in batches])
    assert decode_message(body) == batches


def test_a_single_batch_object_is_a_message_of_one() -> None:
    one = batch("e1", "e2")
    assert decode_message(encode_batch(one)) == [one]
    assert decode_message(b"  \n" + encode_message([one])) == [one]


@pytest.mark.parametrize(
    "body",
    [b"[]", b"", b"not json", b"[1, 2]", b'{"workspace_id": "w"}', b"[" * 10_000, b"\xff\xfe"],
)
def test_what_is_not_a_message_is_refused_as_such(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_message(body)
    assert raised.value.code == "invalid_message"
    assert raised.value.message.startswith("Not an ingest message")


def test_each_batch_has_its_traceparent() -> None:
    headers = {"traceparent": TP1, "x-attempt": 2, "x-traceparents": [TP1, b"", TP2.encode()]}
    assert batch_headers(headers, 3) == [{"traceparent": TP1}, None, {"traceparent": TP2}]


def test_a_message_without_a_list_of_traceparents_traces_its_first_batch_only() -> None:
    headers = {"traceparent": TP1}
    assert batch_headers(headers, 1) == [headers]
    assert batch_headers(headers, 3) == [headers, None, None]
    # A list that does not match the batches is not trusted batch by batch.
    mismatched = {"traceparent": TP1, "x-traceparents": [TP1, TP2]}
    assert batch_headers(mismatched, 3) == [mismatched, None, None]
    assert batch_headers(None, 2) == [None, None]


def test_a_batch_split_off_keeps_the_history_and_takes_its_own_trace() -> None:
    headers = {
        "traceparent": TP1,
        "tracestate": "k=v",
        "x-traceparents": [TP1, TP2],
        "x-attempt": 1,
        "x-last-error": "boom",
    }
    assert part_headers(headers, {"traceparent": TP2}) == {
        "traceparent": TP2,
        "x-attempt": 1,
        "x-last-error": "boom",
    }
    assert part_headers(headers, None) == {"x-attempt": 1, "x-last-error": "boom"}
