"""Every stored history as one ratings file, so `because train` can retrain from what the
service holds: export -> train -> publish -> activate, with nothing from elsewhere.

The file is CSV with a header, `user_id,item_id,rating,timestamp`, a layout `because
train` reads (ids never hold a comma: the API refuses them). Histories are read by SCAN
and written as they come, a page of keys at a time. SCAN may return a key twice (when the
keyspace is rehashed mid-scan, as writes during the export can cause: seen once in ten
runs of the tests), so the users already written are remembered: memory grows with the
user ids, about 100 bytes a user, not with their histories.
"""

from __future__ import annotations

from pathlib import Path

from service.keys import Keys
from service.rating_store import RatingStore
from service.redis_client import Client

HEADER = "user_id,item_id,rating,timestamp\n"


async def export_ratings(
    client: Client, store: RatingStore, keys: Keys, out: Path, page: int = 500
) -> tuple[int, int]:
    """Writes every history; returns (users, ratings) written."""
    users = ratings = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w") as file:
        file.write(HEADER)
        found: list[str] = []
        seen: set[str] = set()
        # A cluster client scans every master in turn.
        async for key in client.scan_iter(match=keys.history_pattern(), count=page,
                                          _type="STRING"):
            user = keys.user_of(key.decode())
            if user in seen:
                continue
            seen.add(user)
            found.append(user)
            if len(found) == page:
                ratings += await _write(store, found, file)
                users += len(found)
                found = []
        if found:
            ratings += await _write(store, found, file)
            users += len(found)
    partial.rename(out)  # a crash never leaves a half file where a full one is expected
    return users, ratings


async def _write(store: RatingStore, users: list[str], file) -> int:  # noqa: ANN001
    written = 0
    for user, history in zip(users, await store.read_many(users), strict=True):
        for r in history:
            file.write(f"{user},{r.item_id},{r.rating:g},{r.timestamp}\n")
            written += 1
    return written
