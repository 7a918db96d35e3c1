"""What can go wrong in a request, as a small tree; `http_errors` maps each to a status.

ServiceError
├── InvalidInput          422  the request is well-formed JSON but not acceptable
│   ├── UnknownItems      422  item ids the model does not know (listed)
│   └── LimitExceeded     422  a list, number or id over a configured limit
├── Unauthenticated       401  no API key, or one the service does not know
├── Forbidden             403  a read-only key on a write
├── NotFound              404  no such item
├── NoRatingHead          409  a predicted rating asked of a model trained without ratings
├── RateLimited           429  this key spent its token bucket; retry after N s
└── StoreUnavailable      503  Redis did not answer; retry later (Retry-After)

Past BECAUSE_MAX_IN_FLIGHT requests `service.overload` answers 503 at the door.
A body over BECAUSE_MAX_BODY_BYTES is refused with 413 by `service.body_limit`, as a
Starlette HTTPException: FastAPI turns any other error raised while it reads a body into 400.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the JSON body."""
        return {}


class InvalidInput(ServiceError):
    status_code = 422


class UnknownItems(InvalidInput):
    def __init__(self, item_ids: list[str]):
        shown = ", ".join(repr(i) for i in item_ids[:20])
        more = f" and {len(item_ids) - 20} more" if len(item_ids) > 20 else ""
        super().__init__(f"unknown item ids: {shown}{more}; see GET /v1/items/{{item_id}}")
        self.item_ids = item_ids


class LimitExceeded(InvalidInput):
    pass


class Unauthenticated(ServiceError):
    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class NoRatingHead(ServiceError):
    """The served model was trained on interactions alone: it ranks, it predicts no
    ratings. Not the request's fault, nor a missing thing: a conflict with the model."""

    status_code = 409

    def __init__(self, version: str, what: str):
        super().__init__(
            f"model {version} has no rating head: it was trained on interactions without "
            f"ratings, so {what} is unavailable (POST /v1/rank orders by what the user picks "
            "next); train with a rating column to get one"
        )


class RateLimited(ServiceError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StoreUnavailable(ServiceError):
    status_code = 503
    retry_after_s = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

