"""Structured logging: one JSON object per line.

``logger.info("job queued", extra={"job_id": "abc"})`` prints
``{"timestamp": "...", "level": "INFO", "logger": "...", "message": "job queued",
"job_id": "abc"}``; CloudWatch Logs Insights can then filter on ``job_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord carries; anything else came in through ``extra=``.
_RESERVED = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_HANDLER_MARK = "_tradai_json_handler"


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object."""

    def __init__(self, static_fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static_fields = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(self.static_fields)
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


def get_logger(
    name: str,
    level: str | int | None = None,
    *,
    stream: TextIO | None = None,
    static_fields: dict[str, Any] | None = None,
) -> logging.Logger:
    """Return ``name``'s logger with exactly one JSON handler attached.

    Calling it again for the same name reuses the handler (no duplicate lines);
    passing ``stream`` replaces the handler's stream.
    """
    logger = logging.getLogger(name)
    handler = next((h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None or stream is not None:
        if handler is not None:
            logger.removeHandler(handler)
        handler = logging.StreamHandler(stream or sys.stdout)
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    handler.setFormatter(JsonFormatter(static_fields))
    if level is not None:
        logger.setLevel(level.upper() if isinstance(level, str) else level)
    elif logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    # The Lambda runtime puts its own handler on the root logger: do not print twice.
    logger.propagate = False
    return logger
