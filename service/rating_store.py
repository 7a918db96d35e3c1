"""Users' ratings in Redis: one compact binary value per user, one round trip per read.

    PREFIX:{u:USER}:h    string: a format byte, then one 10-byte record per rating,
                         oldest first, at most `cap` of them (the newest kept):
                         item code (u32), rating in hundredths (i16), Unix seconds (u32),
                         all big-endian

About 10 bytes a rating where a JSON array cost 22 (`bench.redis_memory`). The item is
its catalogue code (`service.item_codes`), so a record's size does not grow with the
length of ids; a rating is kept to two decimals. One value rather than a hash so the
scoring path pays one GET, decoded by numpy without a Python loop. Writes go through one
Lua script, so an append, a re-rating (replaces the item's record) and the cap apply
atomically, with no read-modify-write race between writers of one user.

With `wait_replicas`, a write is acknowledged only once that many replicas hold it (Redis
WAIT behind the script, `write_then_wait`): an acknowledged rating then survives its
master's death. A replica that does not confirm in time is a 503 with Retry-After;
retrying is safe, as a re-rating replaces.

Each operation's Redis time (a wait for a free connection included: the request pays
it) goes to `observe(operation, seconds)`; the app passes `Metrics.redis_call`, so it is
because_redis_seconds{operation}. Timed here, per store operation, rather than per command
at the client: redis-py's asyncio client has no command hook, so that would mean
subclassing both client kinds and their pipelines inside the connection code; it would
name commands (EVALSHA, GET) where an operator asks how long a history write takes; and
the event follower's blocking XREAD would read as 200 ms of latency. This store is the
Redis that requests wait on: every score, rank and explanation reads one history, every
rating POST writes one. The rate limiter times its token the same way; the catalogue
and item codes answer from memory, and their rare misses are not timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from service.errors import StoreUnavailable, UnknownItems
from service.item_codes import ItemCodes
from service.keys import Keys
from service.redis_client import Client, store_errors, write_then_wait

FORMAT = b"\x01"
RECORD = np.dtype([("code", ">u4"), ("rating", ">i2"), ("timestamp", ">u4")])
HUNDREDTHS = 100

Observe = Callable[[str, float], None]  # (operation, seconds)

# KEYS[1]: history. ARGV[1]: cap, ARGV[2]: the new records, ARGV[3]: the format byte.
# Records are compared as numbers read from their bytes (Lua's string order follows the
# server's locale). Returns the history's size after the write.
_MERGE_SCRIPT = """
local size = 10
local function number(s, from)
  local a, b, c, d = string.byte(s, from, from + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local at, records = {}, {}
local function add(record)
  local code = number(record, 1)
  local entry = {code, number(record, 7), record}
  local i = at[code]
  if i then records[i] = entry else
    records[#records + 1] = entry
    at[code] = #records
  end
end
local old = redis.call('GET', KEYS[1])
if old then
  for i = 2, #old, size do add(string.sub(old, i, i + size - 1)) end
end
local new = ARGV[2]
for i = 1, #new, size do add(string.sub(new, i, i + size - 1)) end
table.sort(records, function(x, y)
  if x[2] ~= y[2] then return x[2] < y[2] end
  return x[1] < y[1]
end)
local cap = tonumber(ARGV[1])
local kept = {ARGV[3]}
for i = math.max(1, #records - cap + 1), #records do kept[#kept + 1] = records[i][3] end
redis.call('SET', KEYS[1], table.concat(kept))
return #kept - 1
"""


class Rating(NamedTuple):
    """One stored rating. A tuple: a 1000-entry history is decoded on every scoring call."""

    item_id: str
    rating: float
    timestamp: int


class CodedRatings(NamedTuple):
    """A history as stored, oldest first: item codes (int64), ratings (float32) and their
    Unix times (int64). What the scoring path reads: `ItemCatalogue.coded_history` maps
    codes to a model's indices without an item id per rating."""

    codes: np.ndarray
    ratings: np.ndarray
    times: np.ndarray


class RatingStore:
    """Reads and writes users' ratings; every Redis failure becomes StoreUnavailable (503)."""

    def __init__(self, client: Client, keys: Keys, codes: ItemCodes, cap: int,
                 wait_replicas: int = 0, wait_ms: int = 0, observe: Observe | None = None):
        self._client = client
        self._observe = observe
        self._keys = keys
        self._codes = codes
        self._cap = cap
        self._wait_replicas = wait_replicas
        self._wait_ms = wait_ms
        self._merge = client.register_script(_MERGE_SCRIPT)

    async def read(self, user_id: str) -> list[Rating]:
        """The user's history, oldest first; empty for a user never seen."""
        return await self.decode(await self._stored(user_id))

    async def read_coded(self, user_id: str) -> CodedRatings:
        """The user's history as item codes and ratings, as `read` without the ids."""
        records = _records(await self._stored(user_id))
        return CodedRatings(records["code"].astype(np.int64),
                            (records["rating"] / HUNDREDTHS).astype(np.float32),
                            records["timestamp"].astype(np.int64))

    async def ids_of(self, codes: list[int]) -> list[str]:
        """Each item code's item id."""
        return await self._codes.ids(codes)

    async def read_many(self, user_ids: list[str]) -> list[list[Rating]]:
        """Several users' histories: one pipelined round trip (per node, in a cluster)."""
        with self._redis("history_read_many"):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.get(self._keys.history(user_id))
                found = await pipe.execute()
        return [await self.decode(raw) for raw in found]

    async def add(self, user_id: str, ratings: Iterable[Rating]) -> int:
        """Appends or replaces ratings of catalogued items (UnknownItems names any other);
        returns the history's size after the write."""
        key = self._keys.history(user_id)
        args = [self._cap, await self._encode(list(ratings)), FORMAT]
        if not self._wait_replicas:
            with self._redis("history_write"):
                return int(await self._merge(keys=[key], args=args))
        with self._redis("history_write"):
            size, confirmed = await write_then_wait(
                self._client, key, ("EVAL", _MERGE_SCRIPT, 1, key, *args),
                self._wait_replicas, self._wait_ms)
        if confirmed < self._wait_replicas:
            raise StoreUnavailable(f"rating store: {confirmed} of {self._wait_replicas} "
                                   f"replicas confirmed the write within {self._wait_ms} ms")
        return int(size)

    async def add_many(self, batches: dict[str, list[Rating]]) -> None:
        """Bulk import: one pipelined script call per user. An import trusts its file: an
        item with no code yet is given one."""
        encoded = {user: await self._encode(ratings, assign=True)
                   for user, ratings in batches.items()}
        with store_errors("rating store"):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id, records in encoded.items():
                    # EVAL, not EVALSHA: a cluster pipeline cannot load a missing script.
                    pipe.eval(_MERGE_SCRIPT, 1, self._keys.history(user_id), self._cap,
                              records, FORMAT)
                await pipe.execute()

    async def delete(self, user_id: str) -> None:
        with self._redis("history_delete"):
            await self._client.delete(self._keys.history(user_id))

    async def ping(self) -> None:
        with self._redis("ping"):
            await self._client.ping()

    async def _stored(self, user_id: str) -> bytes | None:
        """The user's history as Redis holds it: one GET."""
        with self._redis("history_read"):
            return await self._client.get(self._keys.history(user_id))

    @contextmanager
    def _redis(self, operation: str) -> Iterator[None]:
        """One Redis operation: a failure becomes StoreUnavailable (503), the time, failed
        or not, is observed."""
        started = time.perf_counter()
        try:
            with store_errors("rating store"):
                yield
        finally:
            if self._observe is not None:
                self._observe(operation, time.perf_counter() - started)

    async def decode(self, raw: bytes | None) -> list[Rating]:
        records = _records(raw)
        ids = await self._codes.ids(records["code"].tolist())
        ratings = (records["rating"] / HUNDREDTHS).tolist()
        return list(map(Rating, ids, ratings, records["timestamp"].tolist()))

    async def _encode(self, ratings: list[Rating], assign: bool = False) -> bytes:
        ids = [r.item_id for r in ratings]
        codes = await (self._codes.assign(ids) if assign else self._codes.codes(ids))
        missing = sorted({r.item_id for r, c in zip(ratings, codes, strict=True) if c is None})
        if missing:
            raise UnknownItems(missing)
        records = np.empty(len(ratings), dtype=RECORD)
        records["code"] = codes
        records["rating"] = [round(r.rating * HUNDREDTHS) for r in ratings]
        records["timestamp"] = [r.timestamp for r in ratings]
        return records.tobytes()


def _records(raw: bytes | None) -> np.ndarray:
    """A stored history's records (RECORD), none for a user never seen."""
    if not raw:
        return np.zeros(0, RECORD)
    if raw[:1] != FORMAT:
        raise ValueError(f"a history in an unknown format (first byte {raw[:1]!r})")
    return np.frombuffer(raw, dtype=RECORD, offset=1)
