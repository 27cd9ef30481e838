"""The domain error hierarchy: every failure a client can cause or see, with a stable code.

::

    EventcoreError                     code            HTTP
    ├── InvalidRequest                 invalid_request  400
    ├── PayloadTooLarge                payload_too_large 413
    ├── UnsupportedEncoding            unsupported_encoding 415
    ├── AuthenticationFailed           unauthorized     401
    ├── PermissionDenied               forbidden        403
    ├── NotFound                       not_found        404
    ├── Conflict                       conflict         409
    │   ├── EmailTaken                 email_taken
    │   ├── AlreadyMember              already_member
    │   ├── AlreadyExists              already_exists   (a reused id: a record with it is stored)
    │   └── LastOwner                  last_owner       (the change would leave no owner)
    ├── RateLimited                    rate_limited     429
    └── Unavailable                    unavailable      503
        ├── DatabaseUnavailable        database_unavailable
        ├── QueueUnavailable           queue_unavailable
        ├── QueueFull                  queue_full
        └── CacheUnavailable           cache_unavailable

Many errors narrow ``code`` further (``invalid_query``, ``revoked_api_key``, ...); the class
decides the HTTP status, in one table at the HTTP edge. Every adapter translates its driver's
exceptions into these in one place, so the same failure has the same class and code whatever the
store, broker or cache behind it.
"""

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


class UnsupportedEncoding(EventcoreError):
    """The body is sent in a content coding that is not accepted (only gzip, or none)."""

    code = "unsupported_encoding"


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


class EmailTaken(Conflict):
    """An account with this email exists."""

    code = "email_taken"

    def __init__(self, message: str = "An account with this email already exists.") -> None:
        super().__init__(message)


class AlreadyMember(Conflict):
    """The user is a member of the workspace already."""

    code = "already_member"

    def __init__(self, message: str = "That user is already a member of this workspace.") -> None:
        super().__init__(message)


class AlreadyExists(Conflict):
    """A record with this id (or other unique key) is stored already.

    Ids are generated, so this means one was reused; the store keeps the first record.
    """

    code = "already_exists"

    def __init__(self, what: str = "record", *, key: str = "id") -> None:
        # "An API key", "A user": by the sound of the first letter, for the few names used.
        article = "An" if what[:1] in "AEIOaeio" else "A"
        super().__init__(f"{article} {what} with this {key} already exists.")
        self.what = what
        self.key = key


class LastOwner(Conflict):
    """The change would leave the workspace without an owner; nothing was changed."""

    code = "last_owner"

    def __init__(self) -> None:
        super().__init__(
            "A workspace keeps at least one owner: make another member an owner first."
        )


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


class DatabaseUnavailable(Unavailable):
    """The store cannot be reached or is busy; nothing was written."""

    code = "database_unavailable"

    def __init__(
        self, message: str = "The database is unavailable.", *, retry_after: float = 1.0
    ) -> None:
        super().__init__(message, retry_after=retry_after)


class QueueUnavailable(Unavailable):
    """The queue cannot be reached or did not confirm; nothing was accepted."""

    code = "queue_unavailable"


class QueueFull(Unavailable):
    """The queue is at its maximum length; nothing was accepted."""

    code = "queue_full"


class CacheUnavailable(Unavailable):
    """The shared cache does not answer (only readiness reports it: everything else fails open)."""

    code = "cache_unavailable"


__all__ = [
    "AlreadyExists",
    "AlreadyMember",
    "AuthenticationFailed",
    "CacheUnavailable",
    "Conflict",
    "DatabaseUnavailable",
    "EmailTaken",
    "EventcoreError",
    "InvalidRequest",
    "LastOwner",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueueFull",
    "QueueUnavailable",
    "RateLimited",
    "Unavailable",
    "UnsupportedEncoding",
]
