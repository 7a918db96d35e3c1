"""Every catalogued item's integer code: what a stored history holds in place of its id.

A history entry is 10 bytes whatever the length of the item's id (a UUID would cost 36),
which is what keeps Redis at about 10 bytes a rating. A code is given once, when the
item is first catalogued, and never changes or is reused, so every process may cache
the pairs for good: a code this process has not met yet (an item catalogued a moment
ago by another process) costs one HMGET, once.

    {PREFIX}:codes        hash: item id -> code
    {PREFIX}:code-ids     hash: code -> item id
    {PREFIX}:last-code    the last code given (codes start at 1)
"""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import StoreUnavailable
from service.keys import Keys
from service.redis_client import Client, store_errors

# KEYS: codes, code-ids, last-code. ARGV: item ids. Returns each id's code, giving new
# ones in order. One slot (the shared tag), so one script in a cluster too.
_ASSIGN_SCRIPT = """
local out = {}
for i, item in ipairs(ARGV) do
  local code = redis.call('HGET', KEYS[1], item)
  if not code then
    code = redis.call('INCR', KEYS[3])
    redis.call('HSET', KEYS[1], item, code)
    redis.call('HSET', KEYS[2], code, item)
  end
  out[i] = tonumber(code)
end
return out
"""

# A script's arguments are held in Redis's memory at once: seeding a large catalogue
# assigns in batches.
_ASSIGN_BATCH = 1000


class ItemCodes:
    def __init__(self, client: Client, keys: Keys):
        self._client = client
        self._keys = keys
        self._code: dict[str, int] = {}
        self._id: dict[int, str] = {}
        self._assign = client.register_script(_ASSIGN_SCRIPT)

    async def load(self) -> None:
        """Caches every pair (start-up), so requests seldom ask Redis for one."""
        with store_errors("item codes"):
            async for item, code in self._client.hscan_iter(self._keys.codes, count=1000):
                self._remember(_text(item), int(code))

    async def assign(self, item_ids: Sequence[str]) -> list[int]:
        """Each id's code, giving one to ids that have none (cataloguing an item)."""
        unseen = sorted({i for i in item_ids if i not in self._code})
        with store_errors("item codes"):
            for start in range(0, len(unseen), _ASSIGN_BATCH):
                batch = unseen[start : start + _ASSIGN_BATCH]
                found = await self._assign(keys=self._script_keys(), args=batch)
                for item, code in zip(batch, found, strict=True):
                    self._remember(item, int(code))
        return [self._code[i] for i in item_ids]

    async def codes(self, item_ids: Sequence[str]) -> list[int | None]:
        """Each id's code; None for an id never catalogued."""
        unseen = sorted({i for i in item_ids if i not in self._code})
        if unseen:
            with store_errors("item codes"):
                found = await self._client.hmget(self._keys.codes, unseen)
            for item, code in zip(unseen, found, strict=True):
                if code is not None:
                    self._remember(item, int(code))
        return [self._code.get(i) for i in item_ids]

    async def ids(self, codes: Sequence[int]) -> list[str]:
        """Each code's item id. Every stored code has one, as codes are never removed."""
        unseen = sorted({c for c in codes if c not in self._id})
        if unseen:
            with store_errors("item codes"):
                found = await self._client.hmget(self._keys.code_ids, unseen)
            lost = [c for c, item in zip(unseen, found, strict=True) if item is None]
            if lost:
                raise StoreUnavailable(f"item codes {lost[:5]} are stored in a history but "
                                       "not in the catalogue's codes: Redis lost data")
            for code, item in zip(unseen, found, strict=True):
                self._remember(_text(item), code)
        ids = self._id
        return [ids[c] for c in codes]

    def _remember(self, item: str, code: int) -> None:
        self._code[item] = code
        self._id[code] = item

    def _script_keys(self) -> list[str]:
        return [self._keys.codes, self._keys.code_ids, self._keys.last_code]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
