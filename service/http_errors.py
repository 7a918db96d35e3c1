"""Turns ServiceError and validation failures into JSON answers: {"detail": ...}, and
documents those answers in the OpenAPI schema (`ERROR_RESPONSES`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.errors import ServiceError, StoreUnavailable
from service.metrics import Metrics
from service.schemas import ErrorResponse

log = logging.getLogger(__name__)

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

# Every error status any route may answer, for the OpenAPI schema (and so for clients and
# the schemathesis fuzz test, which checks each answer against it).
ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"model": ErrorResponse, "description": "the body could not be read as JSON text"},
    401: {"model": ErrorResponse, "description": "no API key, or an unknown one"},
    403: {"model": ErrorResponse, "description": "the key's scope does not allow this"},
    404: {"model": ErrorResponse, "description": "no such item"},
    409: {"model": ErrorResponse, "description": "the served model has no rating head "
          "(trained on interactions alone): no predicted ratings"},
    413: {"model": ErrorResponse, "description": "request body over the configured size"},
    422: {
        "model": ErrorResponse,
        "description": "malformed request (one entry per bad field), or values the model "
        "or a configured limit does not accept (a message)",
    },
    429: {"model": ErrorResponse, "description": "rate limit", "headers": _RETRY_AFTER},
    503: {"model": ErrorResponse, "description": "Redis did not answer, or this process is "
          "overloaded; retry after the header's seconds", "headers": _RETRY_AFTER},
}


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            metrics.redis_errors.inc()
            log.warning("%s %s answered 503: %s", request.method, request.url.path, exc.message)
        return JSONResponse({"detail": exc.message}, exc.status_code, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": problems}, 422)
