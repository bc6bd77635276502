"""Settings: one declaration per variable, read from the environment, documented in the README."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.logs import configure_logging, get_logger, log_step
from core.settings import README, TABLE_END, TABLE_START, Settings, env_names, settings_table


def test_the_readme_table_is_the_one_the_settings_render() -> None:
    """When this fails, run `python -m core.settings` to rewrite the README's table."""
    readme = README.read_text()
    documented = readme.split(TABLE_START + "\n", 1)[1].split("\n" + TABLE_END, 1)[0]
    assert documented == settings_table()


def test_every_variable_is_read_from_its_documented_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "LOCAL_PROVIDER_DELAY_S" in env_names() and "PORT" in env_names()
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("LOCAL_PROVIDER_DELAY_S", "0.5")
    monkeypatch.setenv("LOCAL_DELAY_S", "9")  # the attribute's name is not a variable
    monkeypatch.setenv("AUTH_REQUIRED", "yes")
    monkeypatch.setenv("IMAGE_FETCH_ALLOW_HOSTS", " CDN.example, ,minio.local ")
    monkeypatch.setenv("KIE_BASE_URL", "https://kie.example/")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings()
    assert (settings.port, settings.local_delay_s, settings.auth_required) == (8123, 0.5, True)
    assert settings.image_fetch_allow_hosts == ("cdn.example", "minio.local")
    assert (settings.kie_base_url, settings.log_level) == ("https://kie.example", "DEBUG")
    assert settings.base_url == "http://localhost:8123"


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUBLIC_BASE_URL", "PORT", "DATA_DIR", "AUTH_REQUIRED", "IMAGE_FETCH_ALLOW_HOSTS"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert (settings.public_base_url, settings.port, settings.data_dir) == ("", 3000, Path("data"))
    assert (settings.auth_required, settings.image_fetch_allow_hosts) == (False, ())


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "/elsewhere")
    monkeypatch.setenv("KIE_API_KEY", "from-env")
    settings = Settings(data_dir=Path("/here"), kie_api_key="from-test", local_delay_s=0.05)
    assert settings.data_dir == Path("/here") and settings.kie_api_key.get_secret_value() == "from-test"
    assert settings.local_delay_s == 0.05


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "abc"), ("AUTH_REQUIRED", "maybe"), ("LOG_FORMAT", "xml"), ("QUEUE_ROWS", "0")]
)
def test_a_malformed_variable_stops_the_start_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_every_secret_field_is_redacted_from_the_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The redaction list comes from the fields typed SecretStr: a new secret cannot be left out."""
    secret_fields = [name for name, field in Settings.model_fields.items() if field.annotation is SecretStr]
    assert {"kie_api_key", "kie_webhook_hmac_key", "fal_key", "secret_key"} <= set(secret_fields)
    values = {name: f"{name}-value-0123456789" for name in secret_fields}
    settings = Settings(**values)
    assert set(settings.secrets) == set(values.values())
    assert all(value not in repr(settings) for value in values.values())

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("json", "INFO", settings.secrets)
    try:
        log_step(get_logger("test"), "provider.submit_failed", detail=" and ".join(values.values()))
        get_logger("test").warning("signing with %s", values["secret_key"], extra={"step": "x"})
    finally:
        configure_logging("dev", "INFO")
    output = stream.getvalue()
    assert "provider.submit_failed" in output and "signing with" in output
    assert all(value not in output for value in values.values())
