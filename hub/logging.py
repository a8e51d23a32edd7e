"""Structured logs: one JSON object a line, on stderr, for the server and uvicorn.

An access line carries the method, the path without its query string (a query string can
hold a check code or a token), the status and the client address; never headers, GraphQL
variables or bodies. Other lines carry their message and whatever `extra=` their caller
gave, so callers pass identifiers, never tokens or document content.
"""

from typing import Any

from common.jsonlog import ACCESS_LOGGER, JsonFormatter

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "log_config"]


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn (`log_config=`) and everything else."""
    handler = {"handlers": ["json"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"uvicorn": handler, "uvicorn.error": {"level": level}, ACCESS_LOGGER: handler},
        "root": {"handlers": ["json"], "level": level},
    }
