"""The service's Redis client without REDIS_URL: an embedded real Redis under DATA_DIR."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio.cluster import ClusterNode

from bench.redis_cluster import Cluster
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


async def test_closing_a_nodes_idle_connections_fails_no_command_starting_on_them(
    local_cluster: Cluster,
) -> None:
    """A cluster node's error handling closes its idle connections while other commands
    may be taking them from the pool. redis-py 8.1 closed them in tasks that ran later, and
    the command that had just taken one failed ("Connection lost"), each time; those
    failures closed more, so a failover's errors went on after the cluster was healthy."""
    node = ClusterNode("127.0.0.1", local_cluster.ports[0], max_connections=4)
    try:
        for _ in range(20):
            assert await node.execute_command("PING") == b"PONG"  # connected, now idle
            _, answer = await asyncio.gather(node.disconnect_free_connections(),
                                             node.execute_command("PING"))
            assert answer == b"PONG"
        assert len(node._connections) == 1  # reused and reconnected, not replaced
    finally:
        await node.disconnect()
