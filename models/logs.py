"""Structured logging: every line of the update chain carries `job_id` and `step`.

`LOG_FORMAT=json` prints one JSON object per line (production); the default prints
readable `key=value` lines. `grep <job id>` over either tells a job's whole story.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_REDACTED_KEYS = ("token", "secret", "key", "signature", "authorization")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
    return {k: "***" if any(word in k.lower() for word in _REDACTED_KEYS) else v for k, v in fields.items()}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the fields passed as `extra` at top level."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class DevFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL logger msg key=value ...` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<5} {record.name} {record.getMessage()} {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def configure_logging(log_format: str = "dev", level: str = "INFO") -> None:
    """Install the formatter on the `canvas` logger tree (idempotent)."""
    logger = logging.getLogger("canvas")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else DevFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"canvas.{name}")


def log_step(logger: logging.Logger, step: str, **fields: Any) -> None:
    """Log one step of the update chain; `job_id` and `project_id` go in `fields`."""
    logger.info(step, extra={"step": step, **fields})
