"""In-memory implementations of every port: the reference the other adapters are tested against.

They are public so that code embedding eventcore can test itself with them.
"""

from typing import Any

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory.caches import (
    MemoryCommittedKeys,
    MemoryKeyCache,
    MemoryMembershipCache,
    MemoryProjectCache,
    MemoryQueryCache,
    NoQueryCache,
)
from eventcore.adapters.memory.live import MemoryTicketStore
from eventcore.adapters.memory.queue import MemoryQueue
from eventcore.adapters.memory.ratelimit import MemoryRateLimiter, UnlimitedRateLimiter
from eventcore.adapters.memory.security import FakePasswordHasher
from eventcore.adapters.memory.store import MemoryStore
from eventcore.adapters.security import JwtCodec
from eventcore.platform import Platform, build_platform
from eventcore.ports import Clock
from eventcore.usecases.processing import InlineQueue

__all__ = [
    "FakePasswordHasher",
    "InlineQueue",
    "MemoryCommittedKeys",
    "MemoryKeyCache",
    "MemoryMembershipCache",
    "MemoryProjectCache",
    "MemoryQueryCache",
    "MemoryQueue",
    "MemoryRateLimiter",
    "MemoryStore",
    "MemoryTicketStore",
    "NoQueryCache",
    "UnlimitedRateLimiter",
    "build_memory_platform",
]


def build_memory_platform(clock: Clock | None = None, **overrides: Any) -> Platform:
    """The whole platform on in-memory adapters: for tests of code that embeds eventcore.

    Batches are committed as they are published; keyword arguments replace any port.
    """
    clock = clock or ManualClock()
    ports: dict[str, Any] = {
        "store": MemoryStore(clock),
        "hasher": FakePasswordHasher(),
        "tokens": JwtCodec("memory-platform-secret-of-enough-length"),
        "clock": clock,
        "key_cache": MemoryKeyCache(clock),
        "limiter": UnlimitedRateLimiter(),
        "committed": MemoryCommittedKeys(),
        "query_cache": MemoryQueryCache(clock),
        "project_cache": MemoryProjectCache(clock),
        "membership_cache": MemoryMembershipCache(clock),
        "tickets": MemoryTicketStore(clock),
    }
    ports.update(overrides)
    return build_platform(**ports)
