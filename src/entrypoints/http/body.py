"""Request bodies that handlers read themselves: within the documented limits, gzip included,
and documented in the OpenAPI schema all the same."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from eventcore.entrypoints.http.errors import Codes
from eventcore.errors import InvalidRequest, PayloadTooLarge, UnsupportedEncoding

_GZIP_MAGIC = b"\x1f\x8b"
# The content codings a body may come in (any case): gzip and its alias in RFC 9110, or none.
GZIP = ("gzip", "x-gzip")
IDENTITY = ("identity",)
# What `read_body` answers besides the body: the codes and the statuses of its refusals (and
# Litestar's own 413 for a body over the server's limit).
READ_BODY_CODES: Codes = {
    400: ("malformed_body",),
    413: ("payload_too_large", "request_too_large"),
    415: ("unsupported_encoding",),
}


async def read_body(request: Request[Any, Any, Any], max_bytes: int) -> bytes:
    """The body, gunzipped if ``Content-Encoding`` says so, never more than ``max_bytes``.

    The codings accepted are exactly those documented: ``gzip`` (``x-gzip``, its alias in RFC 9110)
    and ``identity`` or none; any other, or several (``gzip, gzip``), is a 415. Inflating stops at
    the limit, so a small gzip bomb costs no more than a plain body.
    """
    encoding = ",".join(request.headers.getall("content-encoding", [])).strip().lower()
    if encoding not in ("", *IDENTITY, *GZIP):
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported: send gzip or identity (none).",
        )
    body = await request.body()
    data = _gunzip(body, max_bytes) if encoding in GZIP else body
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The request body is larger than {max_bytes} bytes.", code="request_too_large"
        )
    return data


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Every gzip member of ``body`` inflated, in order (RFC 1952 allows several), in at most
    ``max_bytes``; anything after the last member but another member is refused."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(rest, max_bytes + 1 - size)
        except zlib.error:
            raise InvalidRequest(
                "The body is not valid gzip data.", code="malformed_body"
            ) from None
        size += len(part)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"The decompressed body is larger than {max_bytes} bytes.",
                code="request_too_large",
            )
        if not inflater.eof:
            raise InvalidRequest("The gzip body is truncated.", code="malformed_body")
        parts.append(part)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if not rest.startswith(_GZIP_MAGIC):
            raise InvalidRequest(
                "The gzip body has data after its last member.", code="malformed_body"
            )


CONTENT_ENCODING = Parameter(
    name="Content-Encoding",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, enum=[*GZIP, *IDENTITY]),
    description=(
        "How the body is encoded: `gzip` (`x-gzip`; one or more members, read as their"
        " concatenation) or `identity`, in any case; none is `identity`. Any other coding, or"
        " more than one, is a 415 `unsupported_encoding`, answered before the body is read."
    ),
)


def documented_body(description: str, schema: Schema) -> type[Operation]:
    """An ``operation_class`` documenting the JSON body a handler reads with :func:`read_body`,
    and the ``Content-Encoding`` it reads it in.

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
            # Documented only: `read_body` checks it, with its own error (Litestar's check of
            # a header parameter would answer another one).
            self.parameters = [*(self.parameters or []), CONTENT_ENCODING]

    return RawBodyOperation
