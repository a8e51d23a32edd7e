"""JSON log lines: one object a line, for the hub, uvicorn and the adapters alike.

An access line carries the method, the path without its query string (a query string can
hold a check code or a token), the status and the client address; never headers, GraphQL
variables or bodies. Other lines carry their message and whatever `extra=` their caller
gave, so callers pass identifiers, never tokens or document content.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

# The attributes every LogRecord has; anything else on a record came through `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
ACCESS_LOGGER = "uvicorn.access"


def _access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """uvicorn's access record: args = (client, method, full path, HTTP version, status)."""
    args = record.args
    if not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, full_path, http_version, status = args
    path = str(full_path).split("?", 1)[0]
    return {
        "message": f"{method} {path} {status}",
        "client": str(client),
        "method": str(method),
        "path": path,
        "http": str(http_version),
        "status": int(status) if isinstance(status, int) else str(status),
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: ts, level, logger, message, and its extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        access = _access_fields(record) if record.name == ACCESS_LOGGER else None
        if access is not None:
            # One a request: its fields are known, and json is most of its cost.
            entry.update(access)
            return orjson.dumps(entry).decode()
        entry["message"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii keeps each line one line whatever a message holds; default=str turns
        # an odd `extra` into text rather than losing the line.
        return json.dumps(entry, ensure_ascii=True, default=str)
