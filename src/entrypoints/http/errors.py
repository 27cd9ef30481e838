"""One place that turns every error into an HTTP answer with the JSON error shape."""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from eventcore.errors import (
    AuthenticationFailed,
    Conflict,
    EventcoreError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnsupportedEncoding,
)
from eventcore.events import RejectedEvent
from eventcore.usecases.ingest import EventsRejected

log = structlog.get_logger("eventcore.http")

STATUS: dict[type[EventcoreError], int] = {
    InvalidRequest: 400,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedEncoding: 415,
    RateLimited: 429,
    Unavailable: 503,
}

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(msgspec.Struct):
    """What went wrong: a stable snake_case ``code`` and a human ``message``.

    ``rejected`` lists each invalid event when an ingest request had no valid one.
    """

    code: Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]*$")]
    message: Annotated[str, msgspec.Meta(min_length=1)]
    rejected: list[RejectedEvent] | None = None


class ErrorBody(msgspec.Struct):
    """The body of every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


_ERROR_MEANINGS = {
    400: "The request is malformed or breaks a documented rule",
    401: "Credentials are missing, unknown, expired or revoked",
    403: "The caller's role does not allow this",
    404: "No such resource in the caller's workspace",
    409: "The resource already exists",
    413: "The body is over a documented size or count limit",
    415: "The body's `Content-Encoding` is not gzip or identity",
    429: "Over a rate limit; retry after `Retry-After` seconds",
    503: "A dependency is unavailable; nothing was done; retry after `Retry-After` seconds",
}

# What every API route documents: any of them may meet any of these (a 409 from a store
# constraint, a 503 from a store that is down, a 413 from the body limit), always in one shape.
API_ERRORS: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ErrorBody, description=meaning, generate_examples=False)
    for status, meaning in _ERROR_MEANINGS.items()
    if status != 415
}
# What a route that reads a body with `body.read_body` adds.
INGEST_ERRORS = {
    **API_ERRORS,
    415: ResponseSpec(
        data_container=ErrorBody, description=_ERROR_MEANINGS[415], generate_examples=False
    ),
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def status_of(exc: EventcoreError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def domain_error(request: Request[Any, Any, Any], exc: EventcoreError) -> Response[Any]:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited | Unavailable):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    extra: dict[str, Any] = {}
    if isinstance(exc, EventsRejected):
        extra["rejected"] = [
            {"index": r.index, "code": r.code, "message": r.message} for r in exc.rejected
        ]
    return Response(
        error_body(exc.code, exc.message, **extra), status_code=status_of(exc), headers=headers
    )


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http_{status}")
    message = exc.detail or "The request could not be handled."
    if isinstance(exc, ValidationException):
        message = _validation_message(exc)
    elif status == 404:
        message = "No such resource."
    elif status == 413:
        message = "The request body is larger than this server accepts."
    return Response(error_body(code, message), status_code=status, headers=exc.headers or None)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return Response(
        error_body(
            "internal_error", "Something went wrong on our side; the request had no effect."
        ),
        status_code=500,
    )


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict) and item.get("message"):
            where = item.get("key")
            return f"{item['message']}" + (f" (at `{where}`)" if where else "")
    return "The request is not valid."


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    EventcoreError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
