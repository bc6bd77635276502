"""Structured logs: job id and step on every line, and no secrets anywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.logs import configure_logging, get_logger, log_step

API_KEY = "kie-live-0123456789abcdef"
HMAC_KEY = "hmac-secret-value-42"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("json", "INFO", secrets=(API_KEY, HMAC_KEY))
    yield stream
    configure_logging("dev", "INFO")


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_job_id_step_and_fields(captured: io.StringIO) -> None:
    log_step(get_logger("test"), "image.stored", job_id="abc123", project_id=7, provider="kie", duration_ms=12.5)
    (line,) = lines(captured)
    assert (line["step"], line["job_id"], line["project_id"], line["provider"], line["duration_ms"]) == (
        "image.stored",
        "abc123",
        7,
        "kie",
        12.5,
    )
    assert line["level"] == "INFO" and line["msg"] == "image.stored" and line["ts"] > 0


def test_secrets_never_reach_the_output(captured: io.StringIO) -> None:
    logger = get_logger("test")
    log_step(
        logger,
        "provider.submit_failed",
        job_id="j1",
        error=f"401 for key {API_KEY}",
        callback_url="http://app/api/webhooks/kie/j1/Zm9vYmFyLXNlY3JldC10b2tlbg",
        callback_token="tok-123456",
        headers={"Authorization": f"Bearer {API_KEY}", "X-Webhook-Signature": "sig"},
        signature=HMAC_KEY,
    )
    logger.warning("signing with %s failed", HMAC_KEY, extra={"step": "x"})
    output = captured.getvalue()
    for secret in (API_KEY, HMAC_KEY, "Zm9vYmFyLXNlY3JldC10b2tlbg", "tok-123456"):
        assert secret not in output
    first = lines(captured)[0]
    assert first["callback_url"] == "http://app/api/webhooks/kie/j1/***"
    assert first["callback_token"] == "***"
    assert first["job_id"] == "j1"


def test_log_level_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("json", "WARNING")
    log_step(get_logger("test"), "job.created", job_id="quiet")
    get_logger("test").warning("loud", extra={"step": "x"})
    configure_logging("dev", "INFO")
    assert [json.loads(x)["msg"] for x in stream.getvalue().splitlines()] == ["loud"]


def test_dev_format_is_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("dev", "INFO", secrets=(API_KEY,))
    log_step(get_logger("test"), "job.created", job_id="abc", note=f"key {API_KEY}")
    line = stream.getvalue()
    assert "job.created" in line and "job_id=abc" in line and API_KEY not in line
    assert logging.getLogger("canvas").level == logging.INFO
