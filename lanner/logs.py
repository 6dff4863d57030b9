# SPDX-License-Identifier: Apache-2.0
"""Structured logs: one JSON object per line on stderr, with the ``extra=`` fields as top-level keys."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from lanner.text import escape_surrogates

# Attributes every LogRecord has; anything else came from ``extra=`` and is emitted as a field.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: ts, level, service, logger, msg, then the extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.levelno >= logging.ERROR and os.environ.get("LANNER_LOG_TRACEBACKS"):
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_info and record.exc_info[1] is not None:
            out["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        # A process's bytes (paths, argv) may hold undecodable bytes as lone surrogates, which stderr cannot
        # encode; JSON can carry them as \\udcXX escapes, so the line stays one valid, lossless JSON document.
        return escape_surrogates(json.dumps(out, default=str, ensure_ascii=False))


def setup_logging(service: str, level: str = "info") -> None:
    """Send every log record to stderr as a JSON line tagged with ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # grpc and asyncio are chatty at debug; keep them at warning unless asked.
    for noisy in ("grpc", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
