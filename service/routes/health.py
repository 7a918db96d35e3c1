"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Model loaded and Redis answering; 503 names the cause otherwise."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return JSONResponse({"status": "starting", "cause": "model not loaded"}, 503)
    try:
        await services.store.ping()
    except StoreUnavailable as exc:
        return JSONResponse({"status": "unavailable", "cause": exc.message}, 503)
    return JSONResponse({"status": "ready", "model_version": services.recommender.version})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.services.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
