"""Typed settings read once from the environment, so every module agrees on them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"localhost": "localhost", "127.0.0.1": "127.0.0.1", "::1": "[::1]"}


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    """Everything configurable about the app; defaults make a fresh machine work."""

    port: int = 3000
    data_dir: Path = Path("data")
    database_url: str = ""
    public_base_url: str = ""
    local_delay_s: float = 2.0
    log_format: str = "dev"
    log_level: str = "INFO"
    max_image_bytes: int = 20 * 1024 * 1024
    download_timeout_s: float = 30.0
    image_fetch_allow_hosts: tuple[str, ...] = ()
    poll_start_s: float = 2.5
    poll_cap_s: float = 30.0
    poll_timeout_s: float = 15 * 60
    submit_attempts: int = 4
    retry_base_s: float = 1.0
    stall_after_s: float = 120.0
    #: How long a worker's claim on background work (a submit, a poll) lasts if it dies holding it.
    work_lease_s: float = 60.0
    kie_api_key: str = ""
    kie_base_url: str = "https://api.kie.ai"
    kie_webhook_hmac_key: str = ""
    fal_key: str = ""
    fal_queue_url: str = "https://queue.fal.run"
    fal_jwks_url: str = "https://rest.fal.ai/.well-known/jwks.json"
    #: Shared deployments: every page and image needs a signed-in user.
    auth_required: bool = False
    #: Signs media links for providers; kept in the data dir when not given.
    secret_key: str = ""
    #: Reflex's state store in the scaled setup (`REFLEX_REDIS_URL`); readiness pings it.
    redis_url: str = ""
    #: More sites whose pages may use the app (e.g. a LAN name), beyond its own addresses.
    extra_origins: tuple[str, ...] = ()

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'app.db'}"

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line."""
        return (self.kie_api_key, self.kie_webhook_hmac_key, self.fal_key, self.secret_key)

    def problems(self) -> list[str]:
        """Configuration that cannot work; empty when the settings are usable."""
        found = []
        for name, url in (
            ("KIE_BASE_URL", self.kie_base_url),
            ("FAL_QUEUE_URL", self.fal_queue_url),
            ("FAL_JWKS_URL", self.fal_jwks_url),
            ("PUBLIC_BASE_URL", self.base_url),
        ):
            if not url.startswith(("http://", "https://")):
                found.append(f"{name} must be an http(s) URL")
        if self.poll_start_s < 0 or self.poll_cap_s < self.poll_start_s or self.poll_timeout_s <= 0:
            found.append("POLL_START_S <= POLL_CAP_S and POLL_TIMEOUT_S > 0 are required")
        return found

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Pages that may open the websocket: the app's own addresses, and nobody else's.

        Another site must not drive the app from a visitor's browser (cross-site
        websocket hijacking), which matters most for the signed-out local user. The
        app's own addresses are the public URL (with its loopback twins when it is
        local) and where this process is served, `localhost:PORT` and its twins: with
        `PUBLIC_BASE_URL` naming a tunnel for webhooks, the developer still opens the
        app at http://localhost:PORT. `ALLOWED_ORIGINS` adds any other.
        """
        parts = urlsplit(self.base_url)
        public: tuple[str, ...] = (f"{parts.scheme}://{parts.netloc}",)
        if parts.hostname in LOOPBACK_HOSTS:
            public = _loopback_origins(parts.scheme, parts.port)
        served = _loopback_origins("http", self.port)
        return tuple(dict.fromkeys((*public, *served, *self.extra_origins)))

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS when the app is served over HTTPS."""
        return self.base_url.startswith("https://")

    @property
    def has_public_url(self) -> bool:
        """Whether providers on the internet can reach us (an explicit PUBLIC_BASE_URL)."""
        return bool(self.public_base_url)

    @classmethod
    def from_env(cls) -> Settings:
        port = int(_env("PORT", "3000"))
        return cls(
            port=port,
            data_dir=Path(_env("DATA_DIR", "data")),
            database_url=_env("DATABASE_URL", ""),
            public_base_url=_env("PUBLIC_BASE_URL", ""),
            local_delay_s=float(_env("LOCAL_PROVIDER_DELAY_S", "2.0")),
            log_format=_env("LOG_FORMAT", "dev"),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            max_image_bytes=int(_env("MAX_IMAGE_BYTES", str(20 * 1024 * 1024))),
            download_timeout_s=float(_env("DOWNLOAD_TIMEOUT_S", "30")),
            image_fetch_allow_hosts=tuple(
                h.strip().lower() for h in _env("IMAGE_FETCH_ALLOW_HOSTS", "").split(",") if h.strip()
            ),
            poll_start_s=float(_env("POLL_START_S", "2.5")),
            poll_cap_s=float(_env("POLL_CAP_S", "30")),
            poll_timeout_s=float(_env("POLL_TIMEOUT_S", str(15 * 60))),
            submit_attempts=int(_env("SUBMIT_ATTEMPTS", "4")),
            retry_base_s=float(_env("RETRY_BASE_S", "1.0")),
            stall_after_s=float(_env("STALL_AFTER_S", "120")),
            work_lease_s=float(_env("WORK_LEASE_S", "60")),
            kie_api_key=_env("KIE_API_KEY", ""),
            kie_base_url=_env("KIE_BASE_URL", "https://api.kie.ai").rstrip("/"),
            kie_webhook_hmac_key=_env("KIE_WEBHOOK_HMAC_KEY", ""),
            fal_key=_env("FAL_KEY", ""),
            fal_queue_url=_env("FAL_QUEUE_URL", "https://queue.fal.run").rstrip("/"),
            fal_jwks_url=_env("FAL_JWKS_URL", "https://rest.fal.ai/.well-known/jwks.json"),
            auth_required=_env("AUTH_REQUIRED", "false").lower() in ("1", "true", "yes"),
            secret_key=_env("SECRET_KEY", ""),
            redis_url=_env("REFLEX_REDIS_URL", ""),
            extra_origins=tuple(_origin(o) for o in _env("ALLOWED_ORIGINS", "").split(",") if o.strip()),
        )


def _loopback_origins(scheme: str, port: int | None) -> tuple[str, ...]:
    suffix = f":{port}" if port else ""
    return tuple(f"{scheme}://{host}{suffix}" for host in LOOPBACK_HOSTS.values())


def _origin(value: str) -> str:
    """`https://Host:8443/path` -> `https://host:8443`: how a browser writes an Origin header."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"ALLOWED_ORIGINS: {value!r} is not an http(s) origin")
    return f"{parts.scheme}://{parts.netloc.lower()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return Settings.from_env()
