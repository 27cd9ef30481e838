"""What one message of the ingest queue holds: the batches of one or more accepted requests.

A message body is a JSON array of ingest batches (``[batch, batch, ...]``): the publisher puts
the batches of the requests that arrive while a publish is in flight into one message, so one
broker confirm answers all of them. A body that is a single batch object (what earlier versions
published, and what the dead-letter tools may still hold) is read as a one-batch message.

Each batch keeps its own trace context: a message of several batches carries their
``traceparent`` values, in order, in the ``x-traceparents`` header (an empty string for a batch
published outside a trace); its ``traceparent`` header is the first batch's.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from pamqp.common import FieldTable, FieldValue

from eventcore.errors import InvalidRequest
from eventcore.events import IngestBatch, encode_batch

TRACEPARENTS_HEADER = "x-traceparents"

_many = msgspec.json.Decoder(list[IngestBatch])
_one = msgspec.json.Decoder(IngestBatch)


def frame(parts: Sequence[bytes]) -> bytes:
    """The body of a message holding the already encoded batches ``parts``."""
    return b"[" + b",".join(parts) + b"]"


def encode_message(batches: Sequence[IngestBatch]) -> bytes:
    return frame([encode_batch(batch) for batch in batches])


def decode_message(body: bytes) -> list[IngestBatch]:
    """The batches of a message, in order; InvalidRequest for a body that holds none."""
    try:
        batches = _many.decode(body) if body.lstrip()[:1] == b"[" else [_one.decode(body)]
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise InvalidRequest(f"Not an ingest message: {exc}", code="invalid_message") from None
    if not batches:
        raise InvalidRequest("Not an ingest message: it holds no batch.", code="invalid_message")
    return batches


def batch_headers(headers: FieldTable | None, count: int) -> list[FieldTable | None]:
    """The trace headers of each of a message's ``count`` batches (None: published untraced)."""
    if count == 1 or headers is None:
        return [headers] + [None] * (count - 1)
    listed = headers.get(TRACEPARENTS_HEADER)
    if not isinstance(listed, list) or len(listed) != count:
        return [headers] + [None] * (count - 1)
    return [_traceparent(value) for value in listed]


def _traceparent(value: FieldValue) -> FieldTable | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return {"traceparent": value} if isinstance(value, str) and value else None


def part_headers(headers: FieldTable, own: FieldTable | None) -> FieldTable:
    """The headers of a message that carries one batch split off a message of several: the
    message's own (retry history) with that batch's trace context instead of the first's."""
    carried = {
        name: value
        for name, value in headers.items()
        if name not in (TRACEPARENTS_HEADER, "traceparent", "tracestate")
    }
    if own:
        carried.update(own)
    return carried
