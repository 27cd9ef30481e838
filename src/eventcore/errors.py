"""The domain error hierarchy: every failure a client can cause or see, with a stable code."""

from __future__ import annotations


class EventcoreError(Exception):
    """Base of every error eventcore reports to a caller.

    ``code`` is a stable snake_case identifier; the message is a human sentence. The HTTP edge
    maps each subclass to one status in one place.
    """

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(EventcoreError):
    """The request is malformed or violates a documented rule."""

    code = "invalid_request"


class PayloadTooLarge(EventcoreError):
    """The request exceeds a documented size or count limit."""

    code = "payload_too_large"


class AuthenticationFailed(EventcoreError):
    """Missing, unknown, expired or revoked credentials."""

    code = "unauthorized"


class PermissionDenied(EventcoreError):
    """The caller is known but its role does not allow the action."""

    code = "forbidden"


class NotFound(EventcoreError):
    """The resource does not exist, or belongs to another workspace (indistinguishable)."""

    code = "not_found"


class Conflict(EventcoreError):
    """The resource already exists."""

    code = "conflict"


class RateLimited(EventcoreError):
    """The workspace is over its event rate."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(EventcoreError):
    """A dependency needed to accept the request is down or full; nothing was accepted."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "EventcoreError",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
]
