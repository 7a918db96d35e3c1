"""A running app (lifespan and all) on the planted artifact and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.settings import Settings
from tests.helpers import RedisTarget, running


@pytest.fixture
def settings(artifact_dir: Path, redis_target: RedisTarget, key_prefix: str, tmp_path: Path
             ) -> Settings:
    return Settings(
        artifact=artifact_dir,
        redis_url=redis_target.url,
        redis_cluster=redis_target.cluster,
        key_prefix=key_prefix,
        data_dir=tmp_path,
        batch_max_wait_ms=2.0,
        max_ratings_per_request=50,
        # Generous: on a starved CI machine a slow Redis answer must not become a 503.
        # The outage tests set their own, short timeout.
        redis_timeout_s=5.0,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in running(settings):
        yield c


@pytest.fixture
def raw_redis(redis_target: RedisTarget) -> Iterator[redis.Redis | redis.RedisCluster]:
    with redis_target.client(decode_responses=True) as client:
        yield client
