"""Request bodies that handlers read themselves: within the documented limits, gzip included,
and documented in the OpenAPI schema all the same."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema

from eventcore.errors import InvalidRequest, PayloadTooLarge


async def read_body(request: Request[Any, Any, Any], max_bytes: int) -> bytes:
    """The body, decompressed if ``Content-Encoding`` says so, never more than ``max_bytes``.

    Decompression stops at the limit, so a small gzip bomb costs no more than a plain body.
    """
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        data = body
    elif encoding in ("gzip", "x-gzip", "deflate"):
        data = _inflate(body, max_bytes, gzip=encoding != "deflate")
    else:
        raise InvalidRequest(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none.",
            code="unsupported_encoding",
        )
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The request body is larger than {max_bytes} bytes.", code="request_too_large"
        )
    return data


def _inflate(body: bytes, max_bytes: int, *, gzip: bool) -> bytes:
    inflater = zlib.decompressobj(wbits=31 if gzip else 15)
    try:
        data = inflater.decompress(body, max_bytes + 1)
        if len(data) <= max_bytes and not inflater.eof:
            data += inflater.flush()
    except zlib.error:
        raise InvalidRequest(
            "The body is not valid compressed data.", code="malformed_body"
        ) from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The decompressed body is larger than {max_bytes} bytes.", code="request_too_large"
        )
    if not inflater.eof:
        raise InvalidRequest("The compressed body is truncated.", code="malformed_body")
    return data


def documented_body(description: str, schema: Schema) -> type[Operation]:
    """An ``operation_class`` documenting the JSON body a handler reads with :func:`read_body`.

    Such a handler takes the body raw (so that gzip and per-event errors work) and has no
    ``data`` parameter, from which Litestar would otherwise document it.
    """

    @dataclass
    class RawBodyOperation(Operation):
        def __post_init__(self) -> None:
            # Litestar passes request_body=None for a handler without `data`, so set it here.
            self.request_body = RequestBody(
                required=True,
                description=description,
                content={"application/json": OpenAPIMediaType(schema=schema)},
            )

    return RawBodyOperation
