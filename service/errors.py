"""What can go wrong in a request, as a small tree; `http_errors` maps each to a status.

ServiceError
├── InvalidInput          422  the request is well-formed JSON but not acceptable
│   ├── UnknownItems      422  item ids the model does not know (listed)
│   └── LimitExceeded     422  a list or number over a configured limit
├── NotFound              404  no such item
└── StoreUnavailable      503  Redis did not answer; retry later (Retry-After)
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


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


class NotFound(ServiceError):
    status_code = 404


class StoreUnavailable(ServiceError):
    status_code = 503
    retry_after_s = 1
