"""The service's Redis client without REDIS_URL: an embedded real Redis under DATA_DIR."""

from __future__ import annotations

from pathlib import Path

from service.redis_client import redis_connection
from service.settings import Settings


async def test_without_a_url_the_service_runs_its_own_redis_under_the_data_dir(
    tmp_path: Path,
) -> None:
    settings = Settings(redis_url=None, data_dir=tmp_path, redis_max_connections=2)
    async with redis_connection(settings) as client:
        assert await client.set("k", "v")
        assert await client.get("k") == b"v"
        assert client.connection_pool.max_connections == 2
    assert (tmp_path / "redis" / "because.db").exists()
