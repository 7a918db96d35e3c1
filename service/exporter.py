"""Every stored history as one ratings file, so `because train` can retrain from what the
service holds: export -> train -> publish -> activate, with nothing from elsewhere.

The file is CSV with a header, `user_id,item_id,rating,timestamp`, a layout `because
train` reads (ids never hold a comma: the API refuses them). Histories are read by SCAN
and written as they come, a page of keys at a time, so memory stays bounded by one page
whatever the number of users.
"""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from service.rating_store import decode_ratings

HEADER = "user_id,item_id,rating,timestamp\n"


async def export_ratings(
    client: aioredis.Redis, prefix: str, out: Path, page: int = 500
) -> tuple[int, int]:
    """Writes every history under `prefix`; returns (users, ratings) written."""
    users = ratings = 0
    marker = f"{prefix}:h:"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w") as file:
        file.write(HEADER)
        keys: list[bytes] = []
        async for key in client.scan_iter(match=f"{marker}*", count=page, _type="STRING"):
            keys.append(key)
            if len(keys) == page:
                ratings += await _write(client, keys, marker, file)
                users += len(keys)
                keys = []
        if keys:
            ratings += await _write(client, keys, marker, file)
            users += len(keys)
    partial.rename(out)  # a crash never leaves a half file where a full one is expected
    return users, ratings


async def _write(client: aioredis.Redis, keys: list[bytes], marker: str, file) -> int:  # noqa: ANN001
    written = 0
    for key, raw in zip(keys, await client.mget(keys), strict=True):
        user = key.decode()[len(marker):]
        for r in decode_ratings(raw):
            file.write(f"{user},{r.item_id},{r.rating:g},{r.timestamp}\n")
            written += 1
    return written
