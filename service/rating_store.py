"""Users' ratings in Redis: one key per user, one round trip per read.

Key layout (PREFIX defaults to "because"):

    PREFIX:h:{user_id}   string: JSON array [[item_id, rating, timestamp], ...],
                         oldest first, at most `cap` entries (the newest kept)

A history is a single blob rather than a hash so the scoring path pays one GET (about
half the cost of HGETALL on a 128-entry hash). Writes go through one Lua script, so an
append, a re-rating (replaces the old entry) and the cap are applied atomically, with no
read-modify-write race between concurrent writers of the same user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

import redis.asyncio as aioredis

from service.redis_client import store_errors

# KEYS[1]: history key. ARGV[1]: cap. ARGV[2]: JSON array of new [item, rating, ts].
# Returns the history size after the write.
_MERGE_SCRIPT = """
local raw = redis.call('GET', KEYS[1])
local entries = {}
if raw then entries = cjson.decode(raw) end
local position = {}
for i, e in ipairs(entries) do position[e[1]] = i end
for _, e in ipairs(cjson.decode(ARGV[2])) do
  local i = position[e[1]]
  if i then entries[i] = e else
    entries[#entries + 1] = e
    position[e[1]] = #entries
  end
end
table.sort(entries, function(a, b)
  if a[3] ~= b[3] then return a[3] < b[3] end
  return a[1] < b[1]
end)
local cap = tonumber(ARGV[1])
if #entries > cap then
  local kept = {}
  for i = #entries - cap + 1, #entries do kept[#kept + 1] = entries[i] end
  entries = kept
end
redis.call('SET', KEYS[1], cjson.encode(entries))
return #entries
"""


class Rating(NamedTuple):
    """One stored rating. A tuple: a 1000-entry history is decoded on every scoring call."""

    item_id: str
    rating: float
    timestamp: int


class RatingStore:
    """Reads and writes users' ratings; every Redis failure becomes StoreUnavailable (503)."""

    def __init__(self, client: aioredis.Redis, prefix: str, cap: int):
        self._client = client
        self._prefix = prefix
        self._cap = cap
        self._merge = client.register_script(_MERGE_SCRIPT)

    def key(self, user_id: str) -> str:
        return f"{self._prefix}:h:{user_id}"

    async def read(self, user_id: str) -> list[Rating]:
        """The user's history, oldest first; empty for a user never seen."""
        with store_errors("rating store"):
            raw = await self._client.get(self.key(user_id))
        return decode_ratings(raw)

    async def add(self, user_id: str, ratings: Iterable[Rating]) -> int:
        """Appends or replaces ratings; returns the history size after the write."""
        payload = _encode(ratings)
        with store_errors("rating store"):
            return int(await self._merge(keys=[self.key(user_id)], args=[self._cap, payload]))

    async def add_many(self, batches: dict[str, list[Rating]]) -> None:
        """Bulk import: one pipelined script call per user."""
        with store_errors("rating store"):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id, ratings in batches.items():
                    await self._merge(
                        keys=[self.key(user_id)], args=[self._cap, _encode(ratings)], client=pipe
                    )
                await pipe.execute()

    async def delete(self, user_id: str) -> None:
        with store_errors("rating store"):
            await self._client.delete(self.key(user_id))

    async def ping(self) -> None:
        with store_errors("rating store"):
            await self._client.ping()


def decode_ratings(raw: bytes | str | None) -> list[Rating]:
    if not raw:
        return []
    return [Rating(str(i), float(r), int(t)) for i, r, t in json.loads(raw)]


def _encode(ratings: Iterable[Rating]) -> str:
    return json.dumps([[r.item_id, r.rating, r.timestamp] for r in ratings])
