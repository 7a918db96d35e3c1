"""A running app (lifespan and all) on the planted artifact and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def settings(artifact_dir: Path, redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        artifact=artifact_dir,
        redis_url=redis_url,
        key_prefix=key_prefix,
        data_dir=tmp_path,
        batch_max_wait_ms=2.0,
        max_ratings_per_request=50,
        # Generous: on a starved CI machine a slow Redis answer must not become a 503.
        # The outage tests set their own, short timeout.
        redis_timeout_s=5.0,
    )


async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings`, inside its lifespan (no network)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            yield c


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in running(settings):
        yield c


@pytest.fixture
def raw_redis(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def redis_snapshot(raw: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key of this test and its value (histories are strings, rate-limit buckets
    hashes): what 'nothing changed' is checked against."""
    return {
        k: raw.hgetall(k) if raw.type(k) == "hash" else raw.get(k)
        for k in sorted(raw.scan_iter(f"{prefix}:*"))
    }
