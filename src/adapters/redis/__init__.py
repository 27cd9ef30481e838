"""Redis adapters of the distributed profile: shared caches and rate limit, all failing open."""

from eventcore.adapters.redis.caches import (
    RedisCommittedKeys,
    RedisQueryCache,
    RedisWorkspaceCaches,
)
from eventcore.adapters.redis.gateway import RedisGateway
from eventcore.adapters.redis.ratelimit import RedisAdmission, RedisRateLimiter

__all__ = [
    "RedisAdmission",
    "RedisCommittedKeys",
    "RedisGateway",
    "RedisQueryCache",
    "RedisRateLimiter",
    "RedisWorkspaceCaches",
]
