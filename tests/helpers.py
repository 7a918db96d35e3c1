"""Helpers shared by tests: an in-process client, Redis snapshots, free ports, and the
planted users' ratings and histories. Fixtures live in the conftest files."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import redis

from models.data.synthetic import PlantedData
from service.app import create_app
from service.settings import Settings


async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings`, inside its lifespan (no network)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            yield c


def redis_snapshot(raw: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key of this test and its value, whatever its type (histories are strings,
    catalogue entries and rate-limit buckets hashes, the catalogue's ids a sorted set, the
    events a stream): what 'nothing changed' is checked against, read in three pipelined
    round trips. What the fold-in worker writes in the background, on its own schedule, is
    left out: its keys and its events."""
    background = (f"{prefix}:fold:", f"{prefix}:folded:")
    keys = sorted(k for k in raw.scan_iter(f"{prefix}:*", count=1000)
                  if not k.startswith(background))
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = pipe.execute()
    read = {
        "hash": pipe.hgetall,
        "zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
        "set": pipe.smembers,
        "stream": pipe.xrange,
    }
    for key, kind in zip(keys, types, strict=True):
        read.get(kind, pipe.get)(key)
    values = pipe.execute()
    return {
        key: [e for e in value if e[1].get("kind") != "folded"] if kind == "stream" else value
        for key, kind, value in zip(keys, types, values, strict=True)
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def liked_and_disliked(planted: PlantedData, user: int = 0) -> tuple[list[str], list[str]]:
    likes = planted.user_likes[user]
    liked = [f"i{i}" for i, c in enumerate(planted.item_cluster) if likes[c]]
    disliked = [f"i{i}" for i, c in enumerate(planted.item_cluster) if not likes[c]]
    return liked, disliked


def as_ratings(liked: list[str], disliked: list[str]) -> list[dict]:
    """Liked items rated 5, disliked 1; the dislikes are the newest."""
    return [{"item_id": i, "rating": 5, "timestamp": 10 + n} for n, i in enumerate(liked)] + [
        {"item_id": i, "rating": 1, "timestamp": 100 + n} for n, i in enumerate(disliked)
    ]
