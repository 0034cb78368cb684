"""Logging configuration: the request-id filter, JSON or text formatting."""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from graph.observability.requests import current_request_id
from graph.observability.tracing import current_trace_ids


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the id of the request being handled (or ``default``), and
    ``record.trace_id`` / ``record.span_id`` (hex) when tracing is on and a span is current.

    Attach it to handlers: a logger's own filters do not see records of its child loggers.
    """

    def __init__(self, default: str | None = None) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only adds the field."""
        if getattr(record, "request_id", None) is None:
            request = current_request_id() or self.default
            if request is not None:
                record.request_id = request
        if getattr(record, "trace_id", None) is None:
            ids = current_trace_ids()  # None when tracing is off: no span is ever current then
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

LogFormat = Literal["auto", "json", "text"]


def json_logs(log_format: LogFormat, *, production: bool, stream: TextIO | None = None) -> bool:
    """Whether to log JSON lines: ``json`` and ``text`` say so; ``auto`` decides by where logs go.

    ``auto`` gives text to a person reading a terminal in development (``stream``, by default
    ``sys.stderr``, is a TTY), and JSON to a log collector: a pipe, a file or a container's
    log driver, and always in production.
    """
    if log_format != "auto":
        return log_format == "json"
    if production:
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, extras."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # uvicorn adds an ANSI-coloured copy of some messages
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def logging_config(level: str | int = "INFO", *, json: bool = True) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary: one stderr handler on the root logger.

    uvicorn's loggers propagate to it (its access log is replaced by ``conduit.access``). Pass
    the same dictionary to ``uvicorn.run(log_config=...)``: every worker process applies it.
    """
    if isinstance(level, str):
        level = level.upper()
        if level == "TRACE":  # uvicorn's level below DEBUG, unknown to logging until uvicorn registers it
            level = 5
    formatter: dict[str, Any] = {"()": f"{__name__}.json_formatter"} if json else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"conduit": formatter},
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter", "default": None if json else "-"}},
        "handlers": {
            "conduit": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "conduit",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["conduit"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str | int = "INFO", *, json: bool = True) -> None:
    """Log to stderr at ``level``, as JSON lines (``json``) or text, with request ids."""
    logging.config.dictConfig(logging_config(level, json=json))
