"""Per-caller token buckets in Redis, shared by every replica of the service.

    PREFIX:{rl:CALLER}   hash {tokens, at}: tokens left and when (Redis server time, s)

A caller (an API key, or a client address when no key is sent) may spend `burst` requests
at once, refilled at `per_s` tokens per second. One Lua script refills, spends and writes
the bucket atomically, on Redis's clock, so concurrent requests and replicas (with their
own clocks) can never spend the same token twice. When Redis does not answer, requests are
let through: the limiter must not turn a Redis outage into an outage of the routes that
need no Redis (the routes that do answer 503 on their own).

The script's time goes to `observe("rate_limit", seconds)`, as the rating store's
operations do (`service.rating_store`: why there and not at the client).
"""

from __future__ import annotations

import math
import time

from redis.exceptions import RedisError

from service.errors import RateLimited
from service.keys import Keys
from service.rating_store import Observe
from service.redis_client import Client

# KEYS[1]: bucket. ARGV: tokens per second, burst, expiry in ms.
# Returns {1, "0"} when a token was spent, {0, seconds until one is available} otherwise.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local per_s, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_s)
local spent, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  spent = 1
else
  wait = (1 - tokens) / per_s
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {spent, tostring(wait)}
"""


class RateLimiter:
    def __init__(self, client: Client, keys: Keys, per_s: float, burst: int,
                 observe: Observe | None = None):
        self._keys = keys
        self._observe = observe
        self._per_s = per_s
        self._burst = burst
        # A bucket idle long enough to be full again is the same as no bucket.
        self._expiry_ms = math.ceil(burst / per_s * 1000) + 1000
        self._take = client.register_script(_TAKE_SCRIPT)

    def key(self, identity: str) -> str:
        return self._keys.bucket(identity)

    async def take(self, identity: str) -> None:
        """Spends one token of this caller's bucket; raises RateLimited when it is empty."""
        started = time.perf_counter()
        try:
            spent, wait = await self._take(
                keys=[self.key(identity)], args=[self._per_s, self._burst, self._expiry_ms]
            )
        except (RedisError, OSError):
            return
        finally:
            if self._observe is not None:
                self._observe("rate_limit", time.perf_counter() - started)
        if not int(spent):
            retry_after = max(1, math.ceil(float(wait)))
            raise RateLimited(
                f"rate limit: {self._burst} requests at once, then {self._per_s:g} per second "
                f"per API key; retry after {retry_after} s",
                retry_after,
            )
