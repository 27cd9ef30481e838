"""Access tokens signed with the server's secret but carrying claims it would never issue.

The payload is signed exactly as written (JSON text, not a Python value), so that a claim may be
NaN, Infinity, nested, or of any JSON type, and the payload need not be an object at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from tests.fuzz.support import Token, write

_HEADER = b'{"alg":"HS256","typ":"JWT"}'
CLAIMS = ("iss", "sub", "ws", "role", "iat", "exp")
TEXT_CLAIMS = ("iss", "sub", "ws", "role")
TIME_CLAIMS = ("iat", "exp")

# Every JSON type (and the non-standard numbers Python's `json` reads), by name.
JSON_VALUES: dict[str, Any] = {
    "string": "3600",
    "empty-string": "",
    "integer": 7,
    "negative-integer": -1,
    "huge-integer": Token(b"1" + b"0" * 40),
    "float": 4102444800.5,
    "exponent": Token(b"1e400"),
    "nan": Token(b"NaN"),
    "infinity": Token(b"Infinity"),
    "minus-infinity": Token(b"-Infinity"),
    "true": True,
    "false": False,
    "null": None,
    "list": ["owner"],
    "empty-list": [],
    "object": {"role": "owner"},
    "empty-object": {},
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(payload: bytes, secret: str) -> str:
    """An HS256 JWT over exactly ``payload``, signed with ``secret``."""
    signing_input = f"{_b64(_HEADER)}.{_b64(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def good_claims(user_id: str, workspace_id: str, now: float, role: str = "owner") -> dict[str, Any]:
    """The claims the server issues for that user and workspace, valid for an hour from ``now``."""
    return {
        "iss": "eventcore",
        "sub": user_id,
        "ws": workspace_id,
        "role": role,
        "iat": int(now),
        "exp": int(now) + 3600,
    }


def wrong_types(claim: str) -> list[str]:
    """The names of the JSON values of the wrong type for ``claim``: all but a non-empty string
    for the text claims, all but a non-negative integer below 2**63 for the time claims."""
    right = {"string"} if claim in TEXT_CLAIMS else {"integer"}
    return [name for name in JSON_VALUES if name not in right]


def with_claim(claims: dict[str, Any], claim: str, value: Any, secret: str) -> str:
    """A token of ``claims`` with ``claim`` set to ``value``, signed with ``secret``."""
    return sign(write({**claims, claim: value}), secret)


def without_claim(claims: dict[str, Any], claim: str, secret: str) -> str:
    return sign(write({k: v for k, v in claims.items() if k != claim}), secret)


def odd_payloads(claims: dict[str, Any]) -> dict[str, bytes]:
    """Payloads that are not a flat object of claims: nested, wrapped, or not an object."""
    return {
        "nested-in-object": write({"claims": claims}),
        "wrapped-in-list": write([claims]),
        "string": write("eventcore"),
        "number": b"1",
        "null": b"null",
        "empty-object": b"{}",
        "not-json": b"{not json",
        "repeated-sub": write(Token(write(claims)[:-1] + b',"sub":["x"]}')),
    }
