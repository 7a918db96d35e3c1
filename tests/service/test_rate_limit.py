"""Per-key token buckets in Redis: 429 with Retry-After once a key's burst is spent, other
keys unaffected, atomic under concurrency, and off unless configured."""

from __future__ import annotations

import asyncio

import redis

from service.keys import Keys
from service.settings import Settings
from tests.helpers import redis_snapshot, running

FIRST, SECOND = "k-first-5d1e", "k-second-9a7c"
# A refill of one token per 1000 s: within a test the bucket only empties.
SLOW = {"api_keys": {FIRST: "write", SECOND: "write"}, "rate_limit_per_s": 0.001}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_spent_key_gets_429_with_retry_after_and_others_do_not(
    settings: Settings, raw_redis: redis.Redis, key_prefix: str
) -> None:
    post = {"ratings": [{"item_id": "i1", "rating": 4}]}
    async for c in running(settings.model_copy(update={**SLOW, "rate_limit_burst": 3})):
        for _ in range(3):
            r = await c.post("/v1/users/u/ratings", json=post, headers=bearer(FIRST))
            assert r.status_code == 200
        history = Keys(key_prefix).history("u")
        before = redis_snapshot(raw_redis, key_prefix)[history]
        limited = await c.post("/v1/users/u/ratings", json=post, headers=bearer(FIRST))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 1000
        assert "rate limit" in limited.json()["detail"]
        after = redis_snapshot(raw_redis, key_prefix)[history]
        assert after == before  # the refused write stored nothing
        assert (await c.get("/v1/items/i1", headers=bearer(FIRST))).status_code == 429
        assert (await c.get("/v1/items/i1", headers=bearer(SECOND))).status_code == 200
        assert (await c.get("/healthz")).status_code == 200  # probes are never limited


async def test_concurrent_requests_never_spend_a_token_twice(settings: Settings) -> None:
    async for c in running(settings.model_copy(update={**SLOW, "rate_limit_burst": 5})):
        answers = await asyncio.gather(
            *(c.get("/v1/items/i1", headers=bearer(FIRST)) for _ in range(40))
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 5 + [429] * 35


async def test_off_by_default(settings: Settings) -> None:
    """The demo's settings: three bursts' worth of requests at once, none refused."""
    assert settings.rate_limit_per_s == Settings().rate_limit_per_s == 0
    async for c in running(settings):
        answers = await asyncio.gather(
            *(c.get("/v1/items/i1") for _ in range(3 * settings.rate_limit_burst))
        )
    assert all(r.status_code == 200 for r in answers)
