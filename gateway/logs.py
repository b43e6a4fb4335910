"""Structured JSON logs (structlog), with secrets scrubbed before anything is rendered."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, Request, StreamResponse

_SECRET_KEYS = re.compile(r"(authorization|token|secret|password|api_key|signature)", re.I)
_TOKEN_IN_TEXT = re.compile(r"((?:token|secret|password|api_key)=)[^&\s\"']+", re.I)
_BASIC_OR_BEARER = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+")


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key))


def _scrub_text(value: str) -> str:
    # A search first: substituting costs several times a search that finds nothing, and
    # nearly every string logged has nothing to hide.
    if "=" in value and _TOKEN_IN_TEXT.search(value):
        value = _TOKEN_IN_TEXT.sub(r"\1[redacted]", value)
    if ("Bearer" in value or "Basic" in value) and _BASIC_OR_BEARER.search(value):
        value = _BASIC_OR_BEARER.sub(r"\1 [redacted]", value)
    return value


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: "[redacted]" if _secret_key(str(k)) else scrub(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _scrub_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return scrub(event_dict)


def _client_faults_are_not_errors(record: logging.LogRecord) -> bool:
    """aiohttp logs a request it cannot parse as an ERROR with a traceback; it is the
    client's fault: one INFO line saying what was wrong (scrubbed like any other)."""
    if record.name == "aiohttp.server" and record.exc_info and \
            isinstance(record.exc_info[1], HttpProcessingError):
        exc = record.exc_info[1]
        record.msg, record.args = f"{record.getMessage()}: {exc.message}", ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def _render(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


_settings: dict[str, Any] = {"stream": None, "access": True, "webhooks": False}


def access_log_webhooks(on: bool) -> None:
    """Whether accepted webhooks get an access line too (refused ones always do)."""
    _settings["webhooks"] = on


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Every log line one JSON object through the one scrubber: the gateway's own (structlog)
    and the standard library's (aiohttp's server and access logs, asyncio, APScheduler)."""
    _settings["stream"] = stream
    _settings["access"] = logging.getLevelName(level) <= logging.INFO
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            _scrub_processor,
            structlog.processors.JSONRenderer(serializer=_render),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _scrub_processor,
                    structlog.processors.JSONRenderer(serializer=_render)]))
    handler.addFilter(_client_faults_are_not_errors)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.getLevelName(level))


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


class AccessLog(AbstractAccessLogger):
    """aiohttp's access log as the gateway's JSON lines: method, path (never the query, which
    may carry a webhook token), status, duration and the connector a webhook was for.

    One line per request, so it is written here rather than through structlog's chain (a
    third of the cost, measured by bench/intake.py), but in the same shape and through the
    same scrubber."""

    @property
    def enabled(self) -> bool:
        return _settings["access"]

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if response.status < 300 and not _settings["webhooks"] and \
                request.path.startswith("/webhooks/"):
            return  # an accepted webhook's record is the inbox itself
        connector = None
        if isinstance(request, Request):
            with contextlib.suppress(AssertionError):  # a request no route was matched for
                connector = request.match_info.get("connector")
        line = scrub({"method": request.method, "path": request.path, "status": response.status,
                      "duration_ms": round(time * 1000, 3), "connector": connector,
                      "event": "http.request", "level": "info",
                      "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
        stream = _settings["stream"] or sys.stderr
        stream.write(orjson.dumps(line).decode() + "\n")
        stream.flush()
