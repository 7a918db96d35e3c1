"""What Redis pays for histories and for the catalogue, by Redis's own `MEMORY USAGE`.

Users of 10, 100 and 1000 ratings of MovieLens-100K items (random items, integer ratings,
real-looking timestamps) are written through the service's `RatingStore` into a fresh
redis-server; beside each history, the same ratings in the JSON layout the service used
before (`[[item, rating, timestamp], ...]`), so both are measured in one run. The
catalogue's cost per item counts its hash, its entry in the id set and both code hashes.

    .venv/bin/python -m bench.redis_memory --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
from pathlib import Path

import redis.asyncio as aioredis

from bench.record import append_result, provenance
from bench.serve_load import free_port, redis_server
from models.data.readers import read_ratings
from service.events import EventLog
from service.item_codes import ItemCodes
from service.item_store import Item, ItemStore
from service.keys import Keys
from service.rating_store import Rating, RatingStore

SIZES = (10, 100, 1000)
GOAL_BYTES_PER_RATING = 12  # at 100 ratings per user (issue 14)


async def measure(url: str, items: list[str], users: int, seed: int) -> dict:
    rng = random.Random(seed)
    client = aioredis.Redis.from_url(url)
    for _ in range(100):  # the server was just started
        try:
            await client.ping()
            break
        except (aioredis.ConnectionError, OSError):
            await asyncio.sleep(0.05)
    keys = Keys("because")
    codes = ItemCodes(client, keys)
    store = ItemStore(client, keys, codes, EventLog(client, keys))
    await store.seed(Item(i, f"Movie {i}", ["Drama"]) for i in items)
    ratings = RatingStore(client, keys, codes, cap=max(SIZES))
    figures: dict = {"per_user": {}}
    for size in SIZES:
        ours = legacy = 0
        for n in range(users):
            user = f"{size}-{n}"
            start = rng.randrange(880_000_000, 890_000_000)
            history = [Rating(item, float(rng.randint(1, 5)), start + 60 * k)
                       for k, item in enumerate(rng.sample(items, size))]
            await ratings.add(user, history)
            await client.set(f"legacy:h:{user}",
                             json.dumps([[r.item_id, r.rating, r.timestamp] for r in history]))
            ours += await client.memory_usage(keys.history(user), samples=0)
            legacy += await client.memory_usage(f"legacy:h:{user}", samples=0)
        figures["per_user"][size] = {
            "bytes_per_user": round(ours / users, 1),
            "bytes_per_rating": round(ours / users / size, 2),
            "json_bytes_per_user": round(legacy / users, 1),
            "json_bytes_per_rating": round(legacy / users / size, 2),
        }
    catalogue = [keys.items, keys.codes, keys.code_ids] + [keys.item(i) for i in items]
    shared = sum([await client.memory_usage(k, samples=0) or 0 for k in catalogue])
    figures["catalogue_bytes_per_item"] = round(shared / len(items), 1)
    await client.aclose()
    return figures


def report(figures: dict) -> None:
    print("ratings/user  bytes/user  bytes/rating   JSON bytes/user  JSON bytes/rating")
    for size, row in figures["per_user"].items():
        print(f"{size:>12}  {row['bytes_per_user']:>10}  {row['bytes_per_rating']:>12}"
              f"   {row['json_bytes_per_user']:>15}  {row['json_bytes_per_rating']:>17}")
    at_100 = figures["per_user"][100]["bytes_per_rating"]
    verdict = "met" if at_100 <= GOAL_BYTES_PER_RATING else "missed"
    print(f"goal: at most {GOAL_BYTES_PER_RATING} bytes/rating at 100 ratings per user: "
          f"{at_100} ({verdict})")
    per_item = figures["catalogue_bytes_per_item"]
    per_user = figures["per_user"][100]["bytes_per_user"]
    print(f"catalogue: {per_item} bytes per item")
    print(f"sizing: 1 M users x 100 ratings = {per_user * 1e6 / 2**30:.2f} GiB of histories; "
          f"1 M items = {per_item * 1e6 / 2**30:.2f} GiB of catalogue (before Redis's own "
          "overhead per key in its dictionary, replication buffers and fragmentation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--users", type=int, default=200, help="users per history size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table, _ = read_ratings(args.data / "u.data")
    items = sorted(set(table.items.tolist()), key=lambda i: int(i) if i.isdigit() else i)
    started = provenance()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder, redis_server(port, folder):
        figures = asyncio.run(measure(f"redis://127.0.0.1:{port}/0", items, args.users,
                                      args.seed))
    report(figures)
    append_result("redis_memory", {"users_per_size": args.users, **figures}, started)


if __name__ == "__main__":
    main()
