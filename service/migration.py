"""The layout of Because's Redis has a version (`{PREFIX}:schema`); a start-up checks it and
`because migrate` moves a Redis written by an earlier Because to today's.

Schema 1 (before Redis Cluster support) kept a user's history as a JSON array under
`PREFIX:h:USER` and every shared key directly under `PREFIX:` (`PREFIX:items`,
`PREFIX:item:ID`, `PREFIX:events`, `PREFIX:model`, `PREFIX:raters:ID`, `PREFIX:folded:V`,
`PREFIX:fold:waiting`, `PREFIX:imported:F`, rate-limit buckets `PREFIX:rl:CALLER`).
Schema 2 is `service.keys`: binary histories of item codes, shared keys under one hash tag.

Migrating renames the shared keys, gives every catalogued item its code, rewrites each
history through the service's own merge, then marks the schema. Stop the service first
(a schema-2 service refuses to start on schema 1 anyway). Every step is safe to repeat,
so a migration cut off half way is finished by running it again. A cluster never held
schema 1: there is nothing to migrate there.
"""

from __future__ import annotations

import json

from service.item_codes import ItemCodes
from service.keys import SCHEMA, Keys
from service.rating_store import Rating, RatingStore
from service.redis_client import Client


class SchemaError(RuntimeError):
    """Redis holds another layout than this Because reads."""


async def check_schema(client: Client, keys: Keys) -> None:
    """Start-up: refuses a Redis of another schema, naming the fix; marks an empty one."""
    found = await client.get(keys.schema)
    if found is not None and int(found) == SCHEMA:
        return
    if found is not None:
        raise SchemaError(f"Redis holds Because's data in layout {int(found)}; this version "
                          f"reads layout {SCHEMA}: run a matching version")
    if await client.exists(f"{keys.prefix}:items"):  # every schema-1 Redis has a catalogue
        raise SchemaError(f"Redis holds Because's data in the earlier layout 1 (keys "
                          f"{keys.prefix}:*); stop every process and run `because migrate` "
                          "once, then start this version")
    await client.set(keys.schema, SCHEMA, nx=True)


async def migrate(client: Client, keys: Keys, cap: int, page: int = 500) -> dict[str, int]:
    """Moves schema 1 to schema 2; returns what it moved."""
    old = keys.prefix
    moved = {"shared keys": 0, "histories": 0, "ratings": 0}
    singles = {f"{old}:items": keys.items, f"{old}:events": keys.events,
               f"{old}:model": keys.model, f"{old}:fold:waiting": keys.fold_waiting}
    for source, target in singles.items():
        moved["shared keys"] += await _rename(client, source, target)
    families = {f"{old}:item:": keys.item, f"{old}:raters:": keys.raters,
                f"{old}:folded:": keys.folded, f"{old}:imported:": keys.imported}
    for marker, target_of in families.items():
        async for key in client.scan_iter(match=f"{marker}*", count=page):
            name = key.decode()
            moved["shared keys"] += await _rename(client, name, target_of(name[len(marker):]))
    # Leases and rate-limit buckets live for seconds: dropped, not moved.
    await client.delete(f"{old}:fold:lease")
    async for key in client.scan_iter(match=f"{old}:rl:*", count=page):
        await client.delete(key)

    codes = ItemCodes(client, keys)
    catalogued = [i.decode() for i in await client.zrange(keys.items, 0, -1)]
    await codes.assign(catalogued)
    store = RatingStore(client, keys, codes, cap)
    marker = f"{old}:h:"
    found: list[bytes] = []
    async for key in client.scan_iter(match=f"{marker}*", count=page, _type="STRING"):
        found.append(key)
        if len(found) == page:
            await _histories(client, store, found, marker, moved)
            found = []
    if found:
        await _histories(client, store, found, marker, moved)
    await client.set(keys.schema, SCHEMA)
    return moved


async def _rename(client: Client, source: str, target: str) -> int:
    if not await client.exists(source):
        return 0
    await client.rename(source, target)
    return 1


async def _histories(client: Client, store: RatingStore, found: list[bytes], marker: str,
                     moved: dict[str, int]) -> None:
    """Rewrites a page of JSON histories, then deletes them: a history is merged (never
    overwritten) into its new key, so a page repeated after a cut is harmless."""
    batches = {}
    for key, raw in zip(found, await client.mget(found), strict=True):
        if raw is None:
            continue
        batches[key.decode()[len(marker):]] = [
            Rating(str(i), float(r), int(t)) for i, r, t in json.loads(raw)]
    await store.add_many(batches)
    await client.delete(*found)
    moved["histories"] += len(batches)
    moved["ratings"] += sum(len(b) for b in batches.values())
