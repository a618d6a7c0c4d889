"""JSON-lines logging to stdout, with the request id of the current request on every line."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes that every LogRecord has. Anything else on a record came from ``extra=``.
_STANDARD_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "request_id", "color_message", "taskName"}


class RequestIdFilter(logging.Filter):
    """Copy the request id of the current context onto each record.

    Filters run in the thread and context of the logging call, so the id is the one of the
    request that logged the line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line.

    Keys: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
    ``request_id`` when set, every ``extra=`` field, and ``exception`` with the traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str) -> dict[str, Any]:
    """Return a ``logging.config.dictConfig`` dictionary for JSON lines on stdout.

    uvicorn's loggers propagate to the root handler. Its access logger is kept at WARNING,
    because the service writes its own access log line per request.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def setup_logging(level: str) -> None:
    """Send all log records of this process to stdout as JSON lines."""
    logging.config.dictConfig(logging_config(level))


class RepeatThrottle:
    """Allow one log line per key and interval, and count the lines suppressed in between.

    Used for errors that can repeat on every request, such as Redis being down.
    """

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def should_log(self, key: str) -> tuple[bool, int]:
        """Return whether to log now, and how many lines for ``key`` were suppressed before."""
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last_logged[key] = now
        return True, self._suppressed.pop(key, 0)
