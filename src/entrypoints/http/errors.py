"""One place that turns every error into an HTTP answer with the JSON error shape."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
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

# The error codes an operation may answer, by status. Each group below is where some codes
# arise; an operation's responses name the codes of the groups it meets (`api_errors`).
Codes = Mapping[int, Sequence[str]]

# Every request: a query parameter given twice or holding what no store keeps
# (`deps.refuse_unusable_parameters`).
EVERY_REQUEST: Codes = {400: ("invalid_query",)}
# A route with path parameters: the same check of the path.
PATH_PARAMETERS: Codes = {400: ("invalid_path",)}
# Typed parameters or a JSON body, which Litestar validates (`http_error`).
VALIDATED: Codes = {400: ("invalid_request",)}
JSON_BODY: Codes = {**VALIDATED, 413: ("payload_too_large",)}
# A route that reads or writes the store; one that creates a record (whose id may be reused).
STORE: Codes = {503: ("database_unavailable",)}
CREATES: Codes = {**STORE, 409: ("already_exists",)}
# A route behind an access token (`deps.provide_principal`).
ACCESS_TOKEN: Codes = {401: ("unauthorized", "invalid_token", "token_expired"), **STORE}
# ...that also needs a role that not every member has.
ROLE: Codes = {403: ("forbidden",)}
# ...about one resource of the caller's workspace.
NOT_FOUND: Codes = {404: ("not_found",)}
# A name the client gives a workspace, project or key, stored as text as it is.
NAMED: Codes = {400: ("invalid_name", "unstorable_value")}


def merge_codes(*groups: Codes) -> dict[int, tuple[str, ...]]:
    """The codes of all ``groups``, by status, each once, in order."""
    merged: dict[int, dict[str, None]] = {}
    for group in groups:
        for status, codes in group.items():
            merged.setdefault(status, {}).update(dict.fromkeys(codes))
    return {status: tuple(codes) for status, codes in sorted(merged.items())}


def describe_errors(
    codes: Codes, meanings: Mapping[int, str], body: type[msgspec.Struct]
) -> dict[int, ResponseSpec]:
    """A response of ``body`` for each status of ``meanings``, naming its ``codes``."""
    unknown = set(codes) - set(meanings)
    if unknown:
        raise ValueError(f"codes for undocumented statuses {sorted(unknown)}")
    responses = {}
    for status, meaning in meanings.items():
        named = ", ".join(f"`{code}`" for code in codes.get(status, ()))
        responses[status] = ResponseSpec(
            data_container=body,
            description=f"{meaning}. Codes: {named}." if named else meaning,
            generate_examples=False,
        )
    return responses


def api_errors(*groups: Codes) -> dict[int, ResponseSpec]:
    """What an API route documents: every status any route may meet (a 409 from a store
    constraint, a 503 from a store that is down, a 413 from the body limit), always in one
    shape, each naming the codes of ``groups`` and ``EVERY_REQUEST``; 415 only for a route
    whose groups give it codes (one that reads its body with `body.read_body`)."""
    codes = merge_codes(EVERY_REQUEST, *groups)
    meanings = {s: m for s, m in _ERROR_MEANINGS.items() if s != 415 or s in codes}
    return describe_errors(codes, meanings, ErrorBody)


API_ERRORS: dict[int, ResponseSpec] = api_errors()
# What a route outside the API (health, metrics) may answer besides its own answers.
EDGE_ERRORS = describe_errors(EVERY_REQUEST, {400: _ERROR_MEANINGS[400]}, ErrorBody)


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


# Litestar's words for a parameter left out (its path and query follow: not repeated back).
_MISSING = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict) and item.get("message"):
            where = item.get("key")
            return f"{item['message']}" + (f" (at `{where}`)" if where else "")
    missing = _MISSING.match(str(exc.detail))
    if missing is not None:
        return f"The {missing.group(1)} parameter `{missing.group(2)}` is required."
    return "The request is not valid."


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    EventcoreError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
