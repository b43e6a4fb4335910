"""Structured JSON logs (structlog), with secrets scrubbed before anything is rendered."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog

_SECRET_KEYS = re.compile(r"(authorization|token|secret|password|api_key|signature)", re.I)
_TOKEN_IN_TEXT = re.compile(r"((?:token|secret|password|api_key)=)[^&\s\"']+", re.I)
_BASIC_OR_BEARER = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+")


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _BASIC_OR_BEARER.sub(r"\1 [redacted]", _TOKEN_IN_TEXT.sub(r"\1[redacted]", value))
    if isinstance(value, dict):
        return {k: "[redacted]" if _SECRET_KEYS.search(str(k)) else scrub(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _scrub_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return scrub(event_dict)


def configure(level: str = "INFO", stream: Any = None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
            structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(
                o, default=str).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
