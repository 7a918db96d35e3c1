"""Assembles the FastAPI app; the lifespan owns every resource and hands them to requests.

Start-up order: artifact (refuse to start if damaged) -> device and predictor -> FAISS index ->
Redis (URL or embedded) -> micro-batcher -> optional one-time import of demo ratings.

Middleware, outermost first: CORS (only when origins are configured), metrics, body size
limit (413); then the routes, each with its access check (API key scope, rate limit).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models.artifact import load_artifact
from models.inference.device import resolve_device
from models.inference.predictor import Predictor
from service.access import ApiKeys
from service.batcher import MicroBatcher
from service.body_limit import BodySizeLimit
from service.http_errors import install_error_handlers
from service.importer import import_ratings
from service.metrics import Metrics, MetricsMiddleware
from service.rate_limit import RateLimiter
from service.rating_store import RatingStore
from service.recommender import Recommender
from service.redis_client import redis_connection
from service.retrieval import ItemIndex
from service.routes import health, items, ranking, users
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
        artifact = load_artifact(settings.artifact, device)
        predictor = Predictor(artifact, device, settings.like_weight, settings.recommend_depth)
        vectors = predictor.item_vectors()
        retrieval = ItemIndex(vectors.embeddings, vectors.bias)
        batcher = MicroBatcher(
            predictor.run,
            settings.batch_max_size,
            settings.batch_max_wait_ms / 1000,
            metrics.batch_size.observe,
        )
        async with redis_connection(settings) as client:
            store = RatingStore(client, settings.key_prefix, settings.history_cap)
            if settings.import_ratings is not None:
                written = await import_ratings(
                    client, store, settings.import_ratings, settings.key_prefix
                )
                log.info("imported %d ratings from %s", written, settings.import_ratings)
            await batcher.start()
            recommender = Recommender(artifact, store, predictor, batcher, retrieval, settings)
            limiter = None
            if settings.rate_limit_per_s > 0:
                limiter = RateLimiter(
                    client,
                    settings.key_prefix,
                    settings.rate_limit_per_s,
                    settings.rate_limit_burst,
                )
            app.state.services = Services(settings, recommender, metrics, api_keys, limiter)
            if not api_keys:
                log.warning("no API keys configured: anyone may write (development only)")
            log.info("serving model %s on %s", artifact.version, device)
            try:
                yield
            finally:
                await batcher.stop()

    app = FastAPI(
        title="Because",
        version="1",
        summary="Recommendations that say why: attentive neural collaborative filtering.",
        lifespan=lifespan,
    )
    install_error_handlers(app, metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
        )
    app.include_router(users.router)
    app.include_router(ranking.router)
    app.include_router(items.router)
    app.include_router(health.router)
    return app
