"""Password hashing with argon2 and access tokens as HS256 JWTs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import jwt
import msgspec
from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from eventcore.defaults import (
    PASSWORD_HASH_CONCURRENCY,
    PASSWORD_HASH_WAITING,
    TOKEN_LIFETIME_SECONDS,
)
from eventcore.errors import AuthenticationFailed, Unavailable
from eventcore.ports import PasswordHasher
from eventcore.tenancy import Principal, Role

_ISSUER = "eventcore"

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Seconds = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Claims(msgspec.Struct, forbid_unknown_fields=False):
    """The claims :meth:`JwtCodec.issue` writes, with their exact JSON types: a correctly
    signed token holding anything else (a string ``exp``, a list ``ws``, NaN) was not issued
    by this server and is refused like any invalid token."""

    iss: _Text
    sub: _Text
    ws: _Text
    role: Role
    iat: _Seconds
    exp: _Seconds


class Argon2Hasher:
    """argon2id; hashing runs in a thread so the event loop keeps serving."""

    def __init__(
        self, *, time_cost: int = 2, memory_cost: int = 19_456, parallelism: int = 1
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._argon2.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


class BoundedHasher:
    """Any hasher, with at most ``concurrency`` hashes or verifications running at once in this
    process and at most ``waiting`` callers queued for a turn. Past that the caller is refused at
    once (Unavailable ``busy``, 503 with Retry-After) rather than queued without bound: a flood
    of signups or logins holds at most ``concurrency`` threads and cores, and ingestion keeps
    the rest."""

    def __init__(
        self,
        hasher: PasswordHasher,
        *,
        concurrency: int = PASSWORD_HASH_CONCURRENCY,
        waiting: int = PASSWORD_HASH_WAITING,
    ) -> None:
        if concurrency < 1 or waiting < 0:
            raise ValueError("concurrency must be at least 1 and waiting at least 0.")
        self._hasher = hasher
        self._turns = asyncio.Semaphore(concurrency)
        self._waiting_limit = waiting
        self._waiting = 0

    async def hash(self, password: str) -> str:
        async with self._turn():
            return await self._hasher.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._turn():
            return await self._hasher.verify(password_hash, password)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._turns.locked():
            if self._waiting >= self._waiting_limit:
                raise Unavailable(
                    "Too many sign-ups and logins at once; retry after Retry-After seconds.",
                    retry_after=1,
                    code="busy",
                )
            self._waiting += 1
            try:
                await self._turns.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()


class JwtCodec:
    """Access tokens carrying the user, the workspace and the role; they expire."""

    def __init__(self, secret: str, *, lifetime_seconds: int = TOKEN_LIFETIME_SECONDS) -> None:
        if len(secret) < 32:
            raise ValueError("The JWT secret must be at least 32 characters.")
        self._secret = secret
        self._lifetime = lifetime_seconds

    def issue(self, principal: Principal, now: datetime) -> tuple[str, int]:
        issued = int(now.timestamp())
        claims = {
            "iss": _ISSUER,
            "sub": principal.user_id,
            "ws": principal.workspace_id,
            "role": principal.role.value,
            "iat": issued,
            "exp": issued + self._lifetime,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), self._lifetime

    def verify(self, token: str, now: datetime) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "ws", "role"], "verify_exp": False},
            )
            # strict: no string read as a number, no float or bool as an integer.
            checked = msgspec.convert(claims, _Claims, strict=True)
        # TypeError: PyJWT reads `iat` and `nbf` with int(), which a list or object breaks.
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise AuthenticationFailed(
                "The access token is not valid.", code="invalid_token"
            ) from None
        if checked.exp <= now.timestamp():
            raise AuthenticationFailed(
                "The access token has expired; log in again.", code="token_expired"
            )
        return Principal(checked.sub, checked.ws, checked.role)
