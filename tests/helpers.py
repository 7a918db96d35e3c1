"""Helpers shared by tests: an in-process client, the service as a real process, Redis
snapshots, free ports, and the planted users' ratings and histories. Fixtures live in the
conftest files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import redis

from bench.redis_cluster import cluster_client
from models.data.synthetic import PlantedData
from service.app import create_app
from service.keys import Keys
from service.rating_store import RECORD
from service.settings import Settings


async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings`, inside its lifespan (no network)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            yield c


@dataclass(frozen=True)
class RedisTarget:
    """Where a test's Redis is: one plain server, or any node of a cluster."""

    url: str
    cluster: bool

    @contextmanager
    def client(self, **kwargs: object) -> Iterator[redis.Redis | redis.RedisCluster]:
        if self.cluster:
            with cluster_client(self.url, **kwargs) as client:
                yield client
        else:
            with redis.Redis.from_url(self.url, **kwargs) as client:
                yield client


def redis_snapshot(raw: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key of this test and its value, whatever its type (histories are strings,
    catalogue entries and rate-limit buckets hashes, the catalogue's ids a sorted set, the
    events a stream): what 'nothing changed' is checked against, read in four pipelined
    round trips. What the fold-in worker writes in the background, on its own schedule, is
    left out: its keys and its events."""
    shared = Keys(prefix).shared
    background = (f"{shared}:fold:", f"{shared}:folded:")
    keys = sorted(k for k in prefix_keys(raw, prefix) if not k.startswith(background))
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
    strings = [key for key, kind in zip(keys, types, strict=True) if kind == "string"]
    for key, kind in zip(keys, types, strict=True):
        if kind != "string":
            read[kind](key)
    found = iter(pipe.execute())
    with undecoded(raw) as binary:  # histories are binary
        blobs = iter(_get_all(binary, strings))
    values = [next(blobs) if kind == "string" else next(found) for kind in types]
    return {
        key: [e for e in value if e[1].get("kind") != "folded"] if kind == "stream" else value
        for key, kind, value in zip(keys, types, values, strict=True)
    }


def prefix_keys(raw: redis.Redis, prefix: str) -> list:
    """Every key under `prefix`: per-user keys and the shared ones (`service.keys`)."""
    return [k for pattern in (f"{prefix}:*", f"{Keys(prefix).shared}:*")
            for k in raw.scan_iter(pattern, count=1000)]


def stored_history(raw: redis.Redis, prefix: str, user_id: str) -> list[tuple[str, float, int]]:
    """A user's history as Redis holds it, decoded here, apart from the service's code:
    (item id, rating, timestamp), oldest first."""
    keys = Keys(prefix)
    with undecoded(raw) as binary:
        value = binary.get(keys.history(user_id))
        if not value:
            return []
        records = np.frombuffer(value, dtype=RECORD, offset=1)
        ids = binary.hmget(keys.code_ids, records["code"].tolist())
    return [(i.decode() if isinstance(i, bytes) else i, r / 100, t)
            for i, r, t in zip(ids, records["rating"].tolist(), records["timestamp"].tolist(),
                               strict=True)]


def _get_all(raw: redis.Redis | redis.RedisCluster, keys: list) -> list:
    pipe = raw.pipeline(transaction=False)  # not MGET: a cluster refuses keys of two slots
    for key in keys:
        pipe.get(key)
    return pipe.execute()


@contextmanager
def undecoded(raw: redis.Redis | redis.RedisCluster
              ) -> Iterator[redis.Redis | redis.RedisCluster]:
    """A client like `raw` that returns bytes: histories are binary."""
    if isinstance(raw, redis.RedisCluster):
        node = raw.get_default_node()
        with cluster_client(f"redis://{node.host}:{node.port}") as client:
            yield client
        return
    pool = raw.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    own = redis.ConnectionPool(pool.connection_class, **kwargs)
    try:
        yield redis.Redis(connection_pool=own)
    finally:
        own.disconnect()


WRITER = "w-proc-4e1b7d2a9c"  # the write key `serve` starts a process with
STARTUP_S = 180  # torch import and artifact load on a busy 2-core machine


def serve(
    artifact: Path, redis: RedisTarget | None, key_prefix: str, port: int,
    output: int | IO = subprocess.PIPE, options: tuple[str, ...] = (),
    data_dir: Path | None = None, environment: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """`because serve` with `options`, `WRITER` its one API key unless `environment` (set
    last) says otherwise; its log is piped back unless `output` says otherwise (a process
    whose pipe nobody reads blocks once the pipe is full). Without `redis` it starts its
    embedded Redis in `data_dir`."""
    env = {
        **os.environ,
        "BECAUSE_KEY_PREFIX": key_prefix,
        "BECAUSE_API_KEYS": json.dumps({WRITER: "write"}),
    }
    for name in ("REDIS_URL", "BECAUSE_REDIS_URL"):
        env.pop(name, None)
    if redis is not None:
        env["REDIS_URL"] = redis.url
        env["BECAUSE_REDIS_CLUSTER"] = str(redis.cluster).lower()
    if data_dir is not None:
        env["BECAUSE_DATA_DIR"] = str(data_dir)
    env.update(environment or {})
    return subprocess.Popen(
        [sys.executable, "-m", "because.cli", "serve", "--artifact", str(artifact),
         "--port", str(port), *options],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout and process.stdout.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become ready")


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
