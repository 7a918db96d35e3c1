"""The service's Redis client without REDIS_URL: an embedded real Redis under DATA_DIR."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bench.redis_cluster import Cluster
from service.redis_client import WaitingCluster, redis_connection
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


async def test_a_cluster_clients_recovery_fails_no_command_waiting_for_its_answer(
    local_cluster: Cluster,
) -> None:
    """To recover from a cluster error (a pipeline's retry, CLUSTERDOWN), redis-py 8.1
    closes the whole client while other commands run. That closed the connections they were
    waiting on, and each of their failures closed the client again. Now a command in flight
    keeps its connection, the client re-reads the slot map on its next command, and at
    shutdown every connection is closed."""
    # No retry, which would resend a command whose connection was closed and hide it.
    client = WaitingCluster.from_url(local_cluster.url, max_connections=4, socket_timeout=5,
                                     retry=Retry(NoBackoff(), retries=0))
    key = "because-test-in-flight"
    try:
        assert await client.exists(key) == 0  # reads the slot map
        node = client.get_node_from_key(key)
        for _ in range(3):
            waiting = asyncio.create_task(client.blpop([key], timeout=1))  # blocks 1 s
            await asyncio.wait_for(_until(lambda: _in_use(node) > 0), timeout=30)
            await client.aclose()
            assert await waiting is None  # answered, not "Connection closed by server"
            assert await client.exists(key) == 0
    finally:
        await client.aclose()
    await asyncio.wait_for(_until(lambda: _in_use(node) == 0), timeout=30)
    assert not any(connection.is_connected for connection in node._connections)


def _in_use(node: ClusterNode) -> int:
    return len(node._connections) - len(node._free)


async def _until(condition) -> None:  # noqa: ANN001 - a callable of no arguments
    while not condition():
        await asyncio.sleep(0.005)
