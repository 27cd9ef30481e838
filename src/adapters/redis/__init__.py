"""Redis adapters of the distributed profile: shared caches and rate limit, all failing open."""

from adapters.redis.caches import RedisCommittedKeys, RedisKeyCache, RedisQueryCache
from adapters.redis.gateway import RedisGateway
from adapters.redis.ratelimit import RedisRateLimiter

__all__ = [
    "RedisCommittedKeys",
    "RedisGateway",
    "RedisKeyCache",
    "RedisQueryCache",
    "RedisRateLimiter",
]
