"""In-memory implementations of every port: the reference the other adapters are tested against.

They are public so that code embedding eventcore can test itself with them.
"""

from adapters.memory.caches import MemoryCommittedKeys, MemoryKeyCache, MemoryQueryCache
from adapters.memory.queue import MemoryQueue
from adapters.memory.ratelimit import MemoryRateLimiter, UnlimitedRateLimiter
from adapters.memory.security import FakePasswordHasher
from adapters.memory.store import MemoryStore
from eventcore.usecases.processing import InlineQueue

__all__ = [
    "FakePasswordHasher",
    "InlineQueue",
    "MemoryCommittedKeys",
    "MemoryKeyCache",
    "MemoryQueryCache",
    "MemoryQueue",
    "MemoryRateLimiter",
    "MemoryStore",
    "UnlimitedRateLimiter",
]
