"""50 concurrent clients, 10,000 ratings over overlapping users and items: each (user,
item) ends with a rating a linearizable store could hold last, no history exceeds the cap,
and `history_size` matches Redis. Scores under concurrent load equal scores sent alone."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import redis

from models.data.synthetic import PlantedData
from service.app import create_app
from service.settings import Settings
from tests.helpers import as_ratings, liked_and_disliked, stored_history

CLIENTS, REQUESTS_PER_CLIENT, RATINGS_PER_REQUEST = 50, 40, 5  # 10,000 ratings
CAP = 40
# Users 0-19 rate items from a pool smaller than the cap (every pair must survive);
# users 20-39 from a larger pool (the cap trims their oldest ratings).
SMALL_POOL, LARGE_POOL, USERS = 30, 80, 40


@dataclass(frozen=True)
class Write:
    rating: float
    timestamp: int
    sent: int  # logical clock when the request left the client
    acked: int  # ... and when its 200 came back


@pytest.mark.slow
async def test_concurrent_writers_leave_the_last_acknowledged_ratings(
    settings: Settings, raw_redis: redis.Redis, key_prefix: str
) -> None:
    clock = itertools.count()
    writes: dict[tuple[str, str], list[Write]] = {}
    sizes: list[tuple[str, int]] = []
    app = create_app(settings.model_copy(update={"history_cap": CAP}))

    async def client(c: httpx.AsyncClient, number: int) -> None:
        rng = random.Random(number)
        for _ in range(REQUESTS_PER_CLIENT):
            user = rng.randrange(USERS)
            pool = SMALL_POOL if user < USERS // 2 else LARGE_POOL
            items = rng.sample(range(pool), RATINGS_PER_REQUEST)
            sent = next(clock)
            ratings = [
                {"item_id": f"i{i}", "rating": rng.choice([1, 1.5, 2, 3, 4, 4.5, 5]),
                 "timestamp": sent}
                for i in items
            ]
            r = await c.post(f"/v1/users/c{user}/ratings", json={"ratings": ratings})
            assert r.status_code == 200, r.text
            acked = next(clock)
            sizes.append((f"c{user}", r.json()["history_size"]))
            for x in ratings:
                writes.setdefault((f"c{user}", x["item_id"]), []).append(
                    Write(x["rating"], sent, sent, acked)
                )

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = [httpx.AsyncClient(transport=transport, base_url="http://b") for _ in range(50)]
        await asyncio.gather(*(client(c, n) for n, c in enumerate(clients)))

        assert sum(len(w) for w in writes.values()) == 10_000
        histories = {
            user: stored_history(raw_redis, key_prefix, user)
            for user in {u for u, _ in writes}
        }
        for user, history in histories.items():
            assert len(history) <= CAP
            held = {item: (rating, ts) for item, rating, ts in history}
            assert len(held) == len(history)  # one entry per item
            for item, (rating, ts) in held.items():
                # Only writes still in flight when the pair's last write was sent may be
                # the one left: a write acknowledged before another was sent is overwritten.
                candidates = writes[(user, item)]
                last_sent = max(w.sent for w in candidates)
                allowed = {(w.rating, w.timestamp) for w in candidates if w.acked > last_sent}
                allowed.add(next((w.rating, w.timestamp) for w in candidates
                                 if w.sent == last_sent))
                assert (rating, ts) in allowed, (user, item)
            if int(user[1:]) < USERS // 2:  # small pool: nothing trimmed, nothing lost
                assert set(held) == {item for u, item in writes if u == user}
            else:
                assert len(history) == CAP
        assert all(1 <= size <= CAP for _, size in sizes)

        # After the storm, one more write per user: its history_size is what Redis holds.
        for user in histories:
            body = {"ratings": [{"item_id": "i0", "rating": 3, "timestamp": next(clock)}]}
            r = await clients[0].post(f"/v1/users/{user}/ratings", json=body)
            stored = stored_history(raw_redis, key_prefix, user)
            assert r.json()["history_size"] == len(stored)
        for c in clients:
            await c.aclose()


async def test_scores_under_concurrent_load_equal_scores_sent_alone(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    """Stored histories, score and rank, 30 users at once, while writes to other users go on."""
    requests = []
    for user in range(30):
        liked, disliked = liked_and_disliked(planted, user)
        ratings = as_ratings(liked[: 3 + user % 6], disliked[: 1 + user % 4])
        await client.post(f"/v1/users/load{user}/ratings", json={"ratings": ratings})
        candidates = liked[-6:] + disliked[-6:]
        requests.append(("/v1/score", {"user_id": f"load{user}", "item_ids": candidates}))
        requests.append(
            ("/v1/rank", {"user_id": f"load{user}", "candidates": candidates, "k": 12})
        )

    async def answer(path: str, body: dict) -> list[tuple[str, float]]:
        r = await client.post(path, json=body)
        assert r.status_code == 200, r.text
        rows = r.json()["scores"] if path == "/v1/score" else r.json()["items"]
        key = "predicted_rating" if path == "/v1/score" else "score"
        return [(x["item_id"], x[key]) for x in rows]

    async def background_writes() -> None:
        for n in range(60):
            body = {"ratings": [{"item_id": f"i{n}", "rating": 4}]}
            await client.post(f"/v1/users/noise{n % 5}/ratings", json=body)

    alone = [await answer(path, body) for path, body in requests]
    batches_before = batch_count(await client.get("/metrics"))
    together, _ = await asyncio.gather(
        asyncio.gather(*(answer(path, body) for path, body in requests)), background_writes()
    )
    batches = batch_count(await client.get("/metrics")) - batches_before
    assert batches < len(requests)  # some requests really shared a batch
    for a, t in zip(alone, together, strict=True):
        a, t = dict(a), dict(t)
        assert a.keys() == t.keys()
        assert np.allclose([a[i] for i in a], [t[i] for i in a], atol=1e-5)


def batch_count(metrics: httpx.Response) -> float:
    line = next(
        x for x in metrics.text.splitlines() if x.startswith("because_scorer_batch_size_count")
    )
    return float(line.split()[-1])
