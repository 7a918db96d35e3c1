"""What a log line says, in either format, and the one logging set-up `because serve`
applies to our loggers and uvicorn's alike (BECAUSE_LOG_FORMAT, BECAUSE_LOG_LEVEL).

    text   2026-05-01 12:00:00,123 INFO [4242] because.access: request method=GET
           path=/v1/rank status=200 duration_ms=3 request_id=9f0c...
    json   {"time": "2026-05-01T12:00:00.123Z", "level": "INFO", "logger": "because.access",
            "message": "request", "process": 4242, "request_id": "9f0c...", "method": "GET",
            "path": "/v1/rank", "status": 200, "duration_ms": 3}

`request_id` is present on every line logged while a request is handled, wherever in the
code: the request middleware (`service.request_id`) holds it in a context variable for
the request's duration (a line logged on the scoring thread has none: executors do not
carry the context). `exc_info` is the traceback, when the line has one. A line may carry
structured fields, `log.info("request", extra={"fields": {...}})`: keys of the JSON
object, `key=value` after a text line's message. Each line names its process: N workers
write to one stream.
"""

from __future__ import annotations

import datetime
import json
import logging
from contextvars import ContextVar
from typing import Any

from service.settings import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def _request_id(record: logging.LogRecord) -> str | None:
    """The record's own (`extra={"request_id": ...}`), else the request being handled."""
    return getattr(record, "request_id", None) or request_id.get()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """One line for people; structured fields and the request id follow the message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        extra = [f"{key}={value}" for key, value in _fields(record).items()]
        rid = _request_id(record)
        if rid:
            extra.append(f"request_id={rid}")
        return " ".join([line, *extra])


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for a log collector."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        rid = _request_id(record)
        if rid:
            line["request_id"] = rid
        line.update({k: v for k, v in _fields(record).items() if k not in line})
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def log_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the whole process: one stderr handler on the root
    logger in the chosen format, and uvicorn's loggers sent to it rather than to their own
    handlers. uvicorn's access log is off (`access_log=False`): the request middleware
    writes one line per request instead, with its duration and request id."""
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"because": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "because": {
                "class": "logging.StreamHandler",
                "formatter": "because",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["because"], "level": settings.log_level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
