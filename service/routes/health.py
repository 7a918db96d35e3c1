"""Liveness, readiness and Prometheus metrics. Open to every caller: probes carry no key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import examples
from service.errors import StoreUnavailable
from service.schemas import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """The process is alive."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready; `cause` says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Model loaded and Redis answering; 503 names the cause otherwise."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return JSONResponse({"status": "starting", "cause": "model not loaded"}, 503)
    try:
        await services.recommender.ping()
    except StoreUnavailable as exc:
        return JSONResponse({"status": "unavailable", "cause": exc.message}, 503)
    return JSONResponse({"status": "ready", "model_version": services.recommender.version})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": examples.METRICS}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry = request.app.state.services.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
