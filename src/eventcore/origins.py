"""Which web pages may send with a project's write keys: the project's allowed origins.

A write key in a web page is public by nature: anyone can read it there and send with it from
their own page. A project may name the origins (``scheme://host[:port]``, as a browser sends them
in ``Origin``) whose pages may send with its keys; a request from a page of any other origin is
refused (403 ``origin_not_allowed``). An empty list, the default, allows every origin. A request
without an ``Origin`` header (a server SDK, curl) is not a page's: the list does not apply to it.
"""

from __future__ import annotations

import re

from eventcore.defaults import MAX_ALLOWED_ORIGINS
from eventcore.errors import InvalidRequest, PermissionDenied

# What a browser puts in `Origin` for an http(s) page: scheme, host (a name or an address,
# IPv6 in brackets) and a port unless it is the scheme's default; lower case.
_ORIGIN = re.compile(r"^https?://([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")
_MAX_ORIGIN_LENGTH = 300


class OriginNotAllowed(PermissionDenied):
    """The page sending with the key is of an origin its project does not allow."""

    code = "origin_not_allowed"


def checked_origins(origins: object) -> tuple[str, ...]:
    """An allowed-origins list as a client gives it (None: the empty list), each origin in the
    form browsers send, lower-cased, duplicates dropped; anything else a 400 naming it."""
    if origins is None:
        return ()
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise InvalidRequest(
            "`allowed_origins` must be a list of origins, or null.", code="invalid_request"
        )
    if len(origins) > MAX_ALLOWED_ORIGINS:
        raise InvalidRequest(
            f"`allowed_origins` holds at most {MAX_ALLOWED_ORIGINS} origins.",
            code="invalid_request",
        )
    checked: dict[str, None] = {}
    for origin in origins:
        lowered = origin.lower()
        if len(origin) > _MAX_ORIGIN_LENGTH or not _ORIGIN.match(lowered):
            raise InvalidRequest(
                f"{origin[:_MAX_ORIGIN_LENGTH]!r} is not an origin: give `https://host` or"
                " `http://host:port`, with no path (not even `/`).",
                code="invalid_request",
            )
        checked[lowered] = None
    return tuple(checked)


def check_origin(allowed: tuple[str, ...], origin: str | None) -> None:
    """OriginNotAllowed unless a page of ``origin`` may send with the project's keys."""
    if not allowed or origin is None or origin.lower() in allowed:
        return
    raise OriginNotAllowed(
        f"Origin {origin[:_MAX_ORIGIN_LENGTH]!r} may not send with this write key: it is not"
        " one of its project's allowed origins."
    )
