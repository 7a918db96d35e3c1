"""Gives every request an id, logs one line for it, and answers what nothing else did.

X-Request-ID: the caller's (a proxy's, a frontend's) when it is 1 to 128 characters of
A-Z a-z 0-9 _ . : - ; otherwise, or when absent, a new one (uuid4, 32 hex digits). It is
`service.logs.request_id` while the request is handled, so every line logged for it
carries it, and it is returned on every response. This is the outermost middleware, so
the load shedder's 503, the body limit's 413 and a 500 carry it too.

The access line, one per request on the logger `because.access`: method, path, status,
duration_ms and the request id as structured fields (`service.logs`), at INFO; health
probes and metrics scrapes at DEBUG, as they come every few seconds. It replaces
uvicorn's access log, which knows neither the duration nor the request id and logs
before the body is sent.

An exception no handler answered is logged here, once, with its traceback and the
request id, and answered 500 `{"detail": ...}` naming the id the caller can quote. It is
not raised further: uvicorn would log it a second time, outside the request and its id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id
from service.overload import NEVER_SHED

HEADER = "X-Request-ID"
SANE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

access_log = logging.getLogger("because.access")
log = logging.getLogger(__name__)


def choose_id(scope: Scope) -> str:
    """The request's X-Request-ID if sane, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if SANE_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = choose_id(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status is not None:  # the answer has begun: nothing else can be sent
                raise
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = JSONResponse(
                {"detail": f"internal error; quote request id {rid} when reporting it"}, 500
            )
            await response(scope, receive, send_with_id)
        finally:
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,  # None: the client went away before an answer
                # Whole ms: because_request_seconds has the fine grain, and a decimal
                # here could read as a rating to the tests that keep ratings out of logs.
                "duration_ms": round((time.perf_counter() - started) * 1000),
            }
            level = logging.DEBUG if scope["path"] in NEVER_SHED else logging.INFO
            access_log.log(level, "request", extra={"fields": fields})
            request_id.reset(token)
