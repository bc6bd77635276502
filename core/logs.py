"""Structured logging: every line of the update chain carries `job_id` and `step`.

`LOG_FORMAT=json` prints one JSON object per line (python-json-logger); the default
prints readable, coloured `key=value` lines. `grep <job id>` over either tells a
job's whole story. A filter scrubs secrets from every record before any handler
sees it: fields named like secrets, configured secret values, and the per-job
token in webhook URLs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol

from pythonjsonlogger.json import JsonFormatter

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_SECRET_KEYS = ("token", "secret", "password", "api_key", "apikey", "hmac", "signature", "authorization")
_WEBHOOK_TOKEN = re.compile(r"(/api/webhooks/[^/\s\"']+/[^/\s\"']+/)[^/?\s\"']+")
REDACTED = "***"
_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[36m", "WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[41m"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class RedactSecrets(logging.Filter):
    """Replaces secrets in a record's message and extra fields (it never drops a record)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _WEBHOOK_TOKEN.sub(rf"\g<1>{REDACTED}", value)
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        for key, value in extra_fields(record).items():
            secret_named = any(word in key.lower() for word in _SECRET_KEYS)
            setattr(record, key, REDACTED if secret_named else self.scrub(value))
        return True


class DevFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL logger step key=value ...`, coloured on a terminal."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in extra_fields(record).items() if k != "step")
        level = f"{record.levelname:<5}"
        if self.colour:
            level = f"{_COLOURS.get(record.levelname, '')}{level}\033[0m"
        line = f"{stamp}.{int(record.msecs):03d} {level} {record.name} {record.getMessage()} {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(created)f %(levelname)s %(name)s %(message)s",
        rename_fields={"created": "ts", "levelname": "level", "name": "logger", "message": "msg"},
    )


def configure_logging(log_format: str = "dev", level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Install the formatter and the redaction filter on the `canvas` logger tree (idempotent)."""
    logger = logging.getLogger("canvas")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else DevFormatter(colour=sys.stderr.isatty()))
    handler.addFilter(RedactSecrets(secrets))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"canvas.{name}")


def log_step(logger: logging.Logger, step: str, **fields: Any) -> None:
    """Log one step of the update chain; `job_id` and `project_id` go in `fields`."""
    logger.info(step, extra={"step": step, **fields})


class JobLike(Protocol):
    id: str
    project_id: int
    provider: str


def log_job(logger: logging.Logger, step: str, job: JobLike, **fields: Any) -> None:
    """Log one step of a job: the fields that make `grep <job id>` tell its whole chain."""
    log_step(logger, step, job_id=job.id, project_id=job.project_id, provider=job.provider, **fields)
