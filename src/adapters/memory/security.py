"""A fast password hasher for tests: salted SHA-256, never for production."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class FakePasswordHasher:
    async def hash(self, password: str) -> str:
        salt = secrets.token_hex(8)
        return f"{salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"

    async def verify(self, password_hash: str, password: str) -> bool:
        salt, _, digest = password_hash.partition("$")
        expected = hashlib.sha256((salt + password).encode()).hexdigest()
        return hmac.compare_digest(digest, expected)
