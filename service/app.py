"""Assembles the FastAPI app; the lifespan owns every resource and hands them to requests.

Start-up order: Redis (URL, cluster or embedded; its layout's version checked) -> the
model (the store's current version, or the fixed artifact; refuse to start if damaged) ->
item codes -> the catalogue (seeded from the model's items on first start, mirrored) ->
predictor and FAISS index -> micro-batcher -> optional one-time import of demo ratings ->
the lifecycle's follower and fold-in worker.

Middleware, outermost first: request id and access line (`service.request_id`: so every
answer carries X-Request-ID), CORS (only when origins are configured), metrics, load
shedding (503 past BECAUSE_MAX_IN_FLIGHT), body size limit (413); then the routes, each
with its access check (API key scope, rate limit).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models.artifact import Artifact, ArtifactError, load_artifact
from models.inference.device import resolve_device
from service.access import ApiKeys
from service.batcher import MicroBatcher
from service.body_limit import BodySizeLimit
from service.catalogue import CatalogueMirror
from service.events import EventLog
from service.heap import long_lived
from service.http_errors import install_error_handlers
from service.importer import import_ratings
from service.item_codes import ItemCodes
from service.item_store import ItemStore, catalogued
from service.keys import Keys
from service.lifecycle import Lifecycle
from service.metrics import Metrics, MetricsMiddleware
from service.migration import check_schema
from service.model_store import ModelPointer, ModelStore
from service.openapi import install_openapi
from service.overload import LoadShedder
from service.rate_limit import RateLimiter
from service.rating_store import RatingStore
from service.recommender import Recommender
from service.redis_client import redis_connection
from service.request_id import HEADER, RequestContext
from service.routes import demo, health, items, model, ranking, users
from service.served_model import score_batch, serve
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What a request may use; built by the lifespan, read through `service.deps`."""

    settings: Settings
    recommender: Recommender
    metrics: Metrics
    api_keys: ApiKeys
    rate_limiter: RateLimiter | None  # None: no rate limit


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    api_keys = ApiKeys(settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        device = resolve_device(settings.device)
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            await check_schema(client, keys)
            events = EventLog(client, keys)
            store = ModelStore(settings.store) if settings.store is not None else None
            pointer = ModelPointer(client, keys, events)
            with long_lived():
                artifact = await _first_model(settings, store, pointer, device)
                codes = ItemCodes(client, keys)
                await codes.load()
                items = ItemStore(client, keys, codes, events)
                await items.seed(catalogued(artifact))
                mirror = CatalogueMirror([item async for item in items.scan()])
                served = serve(artifact, {}, mirror, settings, device)
            ratings = RatingStore(client, keys, codes, settings.history_cap,
                                  settings.redis_wait_replicas, settings.redis_wait_ms,
                                  metrics.redis_call)
            lifecycle = Lifecycle(served, client, mirror, items, ratings, events, keys,
                                  settings, device, metrics, store,
                                  pointer if store is not None else None)
            batcher = MicroBatcher(
                score_batch,
                settings.batch_max_size,
                settings.batch_max_wait_ms / 1000,
                metrics.batch_size.observe,
                metrics.scorer_seconds.observe,
            )
            metrics.scorer_queue_depth.set_function(lambda: batcher.waiting)
            if settings.import_ratings is not None:
                written = await import_ratings(client, ratings, settings.import_ratings, keys)
                log.info("imported %d ratings from %s", written, settings.import_ratings)
            await batcher.start()
            await lifecycle.start()
            recommender = Recommender(lifecycle, ratings, items, batcher, settings)
            limiter = None
            if settings.rate_limit_per_s > 0:
                limiter = RateLimiter(
                    client,
                    keys,
                    settings.rate_limit_per_s,
                    settings.rate_limit_burst,
                    metrics.redis_call,
                )
            app.state.services = Services(settings, recommender, metrics, api_keys, limiter)
            if not api_keys:
                log.warning("no API keys configured: anyone may write (development only)")
            log.info("serving model %s on %s", artifact.version, device)
            try:
                yield
            finally:
                await lifecycle.stop()
                await batcher.stop()

    app = FastAPI(
        title="Because",
        version="1",
        summary="Recommendations that say why: attentive neural collaborative filtering.",
        lifespan=lifespan,
    )
    install_error_handlers(app, metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(LoadShedder, max_in_flight=settings.max_in_flight, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["*"],
            expose_headers=[HEADER, "Retry-After"],
        )
    app.add_middleware(RequestContext)
    app.include_router(users.router)
    app.include_router(ranking.router)
    app.include_router(items.router)
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(demo.router)
    install_openapi(app, settings)
    return app


async def _first_model(settings: Settings, store: ModelStore | None, pointer: ModelPointer,
                       device: torch.device) -> Artifact:
    """The store's current version (Redis says which), or the fixed artifact."""
    if store is None:
        return load_artifact(settings.artifact, device)
    current = (await pointer.read()).version
    if current is None:
        raise ArtifactError(
            f"no current model version for the store {store.root}: run "
            "`because models publish ARTIFACT --store DIR`, then `because models activate "
            "VERSION --store DIR`"
        )
    return store.load(current)
