"""The service's catalogue in Redis: every item it may rank, score or store a rating for.

Key layout (`service.keys`), beside the histories and the item codes:

    {PREFIX}:items        sorted set, every score 0: every catalogued item id, so ids page in
                          byte order (ZRANGE BYLEX) and a batch of ids is checked in one
                          round trip (ZMSCORE)
    {PREFIX}:item:{id}    hash: title, genres (JSON list), attributes (JSON object),
                          retired ("0" | "1"), updated (Unix seconds)

Every write also appends an `item` event to the event stream (`service.events`), so every
process's in-memory mirror (`CatalogueMirror`) follows. A retired item keeps its key: its
ratings are still stored and it still explains, it is only never recommended again.

Seeding and reading many items run a script per 1000 items rather than a command per item:
at a million items redis-py's cost per command (packing it, a timeout per reply) made
seeding and reading the catalogue most of a 153 s start-up.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

from models.artifact import Artifact
from service.events import ITEM, EventLog
from service.item_codes import ItemCodes
from service.keys import Keys
from service.redis_client import Client, store_errors

# KEYS[1]: the ids set, KEYS[2..]: the items' hashes. ARGV: the field count n, the n
# field names, then per item its id and its n values. An item already catalogued is left as
# it is. One slot (the shared tag), so one script in a cluster too.
_SEED_SCRIPT = """
local n = tonumber(ARGV[1])
local added = 0
for i = 2, #KEYS do
  local at = n + 2 + (i - 2) * (n + 1)
  if redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[at]) == 1 then
    local fields = {}
    for j = 1, n do
      fields[#fields + 1] = ARGV[1 + j]
      fields[#fields + 1] = ARGV[at + j]
    end
    redis.call('HSET', KEYS[i], unpack(fields))
    added = added + 1
  end
end
return added
"""

# KEYS: items' hashes; ARGV: field names. Per item, each field's value (nil where absent).
_READ_FIELDS = ("title", "genres", "attributes", "retired")
_READ_SCRIPT = """
local out = {}
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for j = 1, #ARGV do out[#out + 1] = values[j] end
end
return out
"""


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    genres: list[str] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    retired: bool = False


class ItemStore:
    """Reads and writes catalogue entries; Redis failures become StoreUnavailable (503)."""

    def __init__(self, client: Client, keys: Keys, codes: ItemCodes, events: EventLog):
        self._client = client
        self._keys = keys
        self._codes = codes
        self._events = events
        self.ids_key = keys.items
        self._seed = client.register_script(_SEED_SCRIPT)
        self._read = client.register_script(_READ_SCRIPT)

    def key(self, item_id: str) -> str:
        return self._keys.item(item_id)

    async def put(self, item: Item) -> bool:
        """Creates or updates (and revives) an item; True when it was created."""
        await self._codes.assign([item.item_id])  # first: a catalogued item has a code
        with store_errors("catalogue"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(self.ids_key, {item.item_id: 0}, nx=True)
                pipe.hset(self.key(item.item_id), mapping=_fields(item))
                self._events.append_to(pipe, ITEM, item=item.item_id)
                created, *_ = await pipe.execute()
        return bool(created)

    async def retire(self, item_id: str) -> bool:
        """Marks a catalogued item retired; False when it was never catalogued."""
        with store_errors("catalogue"):
            if await self._client.zscore(self.ids_key, item_id) is None:
                return False
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(self.key(item_id), mapping={"retired": "1", "updated": _now()})
                self._events.append_to(pipe, ITEM, item=item_id)
                await pipe.execute()
        return True

    async def get(self, item_id: str) -> Item | None:
        with store_errors("catalogue"):
            raw = await self._client.hgetall(self.key(item_id))
        return _item(item_id, raw) if raw else None

    async def get_many(self, item_ids: list[str]) -> list[Item | None]:
        """Each item, None for an id never catalogued: one script call (per 1000 ids)."""
        found: list = []
        with store_errors("catalogue"):
            for batch in _chunks(item_ids, 1000):
                found += await self._read(keys=[self.key(i) for i in batch],
                                         args=_READ_FIELDS)
        n = len(_READ_FIELDS)
        rows = ({k: v for k, v in zip(_READ_FIELDS, found[start : start + n], strict=True)
                 if v is not None} for start in range(0, len(found), n))
        return [_item(i, raw) if raw else None for i, raw in zip(item_ids, rows, strict=True)]

    async def catalogued(self, item_ids: list[str]) -> list[bool]:
        """Which ids are in the catalogue (retired ones included): one round trip."""
        if not item_ids:
            return []
        with store_errors("catalogue"):
            scores = await self._client.zmscore(self.ids_key, item_ids)
        return [s is not None for s in scores]

    async def ids_after(self, cursor: str | None, count: int) -> list[str]:
        """Up to `count` ids in byte order, after `cursor` (from the start when None)."""
        start = "-" if cursor is None else f"({cursor}"
        with store_errors("catalogue"):
            found = await self._client.zrange(
                self.ids_key, start, "+", bylex=True, offset=0, num=count
            )
        return [_text(i) for i in found]

    async def seed(self, items: Iterable[Item], chunk: int = 1000) -> int:
        """Adds the items the catalogue lacks (never overwriting an entry): what the
        artifact's items do on first start. Returns how many were added."""
        added = 0
        for batch in _chunks(list(items), chunk):
            with store_errors("catalogue"):
                present = await self.catalogued([i.item_id for i in batch])
                new = [i for i, p in zip(batch, present, strict=True) if not p]
                if not new:
                    continue
                await self._codes.assign([i.item_id for i in new])
                rows = [_fields(i) for i in new]
                names = list(rows[0])
                values = [v for i, row in zip(new, rows, strict=True)
                          for v in (i.item_id, *(row[f] for f in names))]
                added += await self._seed(
                    keys=[self.ids_key, *(self.key(i.item_id) for i in new)],
                    args=[len(names), *names, *values])
        return added

    async def scan(self, chunk: int = 1000) -> AsyncIterator[Item]:
        """Every catalogued item, in pages of `chunk` (a process's mirror loads this)."""
        cursor = None
        while ids := await self.ids_after(cursor, chunk):
            for item in await self.get_many(ids):
                if item is not None:
                    yield item
            cursor = ids[-1]


def _fields(item: Item) -> dict[str, str]:
    return {
        "title": item.title,
        "genres": json.dumps(item.genres),
        "attributes": json.dumps(item.attributes),
        "retired": "1" if item.retired else "0",
        "updated": _now(),
    }


def _item(item_id: str, raw: dict) -> Item:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return Item(
        item_id,
        fields.get("title", item_id),
        json.loads(fields.get("genres", "[]")),
        json.loads(fields.get("attributes", "{}")),
        fields.get("retired") == "1",
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now() -> str:
    return str(int(time.time()))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def catalogued(artifact: Artifact) -> list[Item]:
    """The artifact's items as catalogue entries: what seeds the catalogue (on first start,
    and with every version activated, so items a new model was trained on are catalogued)."""
    return [Item(i, artifact.catalogue.title(i), artifact.catalogue.genres.get(i, []))
            for i in artifact.item_ids.ids]

