"""Bulk-loads a ratings file into Redis histories (the demo's users), pipelined.

Runs through the same merge script as the API, so importing twice changes nothing and a
user's later API ratings are merged, not overwritten. A marker key records which data
fingerprint was imported, so the service's start-up import happens once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.data.readers import read_ratings
from service.keys import Keys
from service.rating_store import Rating, RatingStore
from service.redis_client import Client


async def import_ratings(
    client: Client,
    store: RatingStore,
    path: Path,
    keys: Keys,
    users_per_pipeline: int = 200,
    progress: bool = True,
    force: bool = False,
) -> int:
    """Imports `path`; returns the number of ratings written (0 if already imported)."""
    table, _ = read_ratings(path)
    marker = keys.imported(table.fingerprint()[:16])
    if not force and await client.exists(marker):
        return 0
    order = np.lexsort((table.timestamps, table.users))
    users = table.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    bounds = list(zip(starts, np.r_[starts[1:], len(users)], strict=True))
    bar = tqdm(total=len(table), disable=not progress, desc="import", unit="rating")
    for chunk in range(0, len(bounds), users_per_pipeline):
        batches: dict[str, list[Rating]] = {}
        for start, end in bounds[chunk : chunk + users_per_pipeline]:
            rows = order[start:end]
            batches[str(users[start])] = [
                Rating(str(i), float(r), int(t))
                for i, r, t in zip(
                    table.items[rows], table.ratings[rows], table.timestamps[rows], strict=True
                )
            ]
        await store.add_many(batches)
        bar.update(sum(len(b) for b in batches.values()))
    bar.close()
    await client.set(marker, str(path))
    return len(table)
