"""JSON answers sent as already-encoded bytes, with an entity tag, and 304 for a client that has them.

The tag is a strong validator: the answer's digest (:class:`~eventcore.EncodedAnswer`), made from
its bytes alone when it was computed (equal bytes, equal tag, whichever process or cache produced
them), so a client revalidating with ``If-None-Match`` gets ``304 Not Modified`` exactly when the
answer it holds is still the answer. The conditional is evaluated only once the request was
authenticated and the use case answered, so no 304 ever tells a caller anything a 200 would not
have.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from eventcore.usecases.analytics import EncodedAnswer

T = TypeVar("T")

# Answers follow the data: a client may keep one, but must revalidate it before each use, and
# no shared cache may keep it (it was asked for with credentials).
_CACHE_CONTROL = "private, no-cache"
# One member of an If-None-Match list (RFC 9110 13.1.2, 8.8.3): an optional weak prefix and a
# quoted opaque tag, or nothing (a list may hold empty members), then a comma or the end.
_LIST_MEMBER = re.compile(r'[ \t]*(?:(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)')


def none_match(header_values: list[str], opaque_tag: str) -> bool:
    """Whether ``If-None-Match`` (its field values, in order) matches the entity tag whose
    unquoted text is ``opaque_tag``: ``*``, or a list holding the tag, weakly compared (``W/"x"``
    matches ``"x"``). A value that is not a valid list matches nothing: the full answer is sent."""
    if not header_values:
        return False
    value = ",".join(header_values)
    if value.strip(" \t") == "*":
        return True
    position = 0
    while position < len(value):
        member = _LIST_MEMBER.match(value, position)
        if member is None or member.end() == position:
            return False
        if member[1] == opaque_tag:
            return True
        position = member.end()
    return False


def json_answer(request: Request[Any, Any, Any], answer: EncodedAnswer) -> Response[T]:
    """The answer's bytes (JSON already encoded, documented as ``T`` by the route's annotation)
    as a 200 with its entity tag, or a 304 without a body when ``If-None-Match`` matches it."""
    headers = {"ETag": f'"{answer.digest}"', "Cache-Control": _CACHE_CONTROL}
    # Bytes are sent as they are: Litestar renders bytes content without encoding it again.
    content: Any = answer.body
    status = HTTP_200_OK
    if none_match(request.headers.getall("if-none-match", []), answer.digest):
        content, status = b"", HTTP_304_NOT_MODIFIED
    return Response(content, status_code=status, headers=headers, media_type=MediaType.JSON)
