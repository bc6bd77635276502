"""Which providers this process runs; the one place a new provider is switched on."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import httpx

from core.contract import ProgressSink, ProviderRegistry
from core.db import Database
from core.settings import Settings
from providers.comfyui import ComfyUIProvider
from providers.fal import FalProvider
from providers.kie import KieProvider
from providers.local import LocalProvider
from providers.replicate import ReplicateProvider


def build_registry(
    settings: Settings, http: httpx.AsyncClient, db: Database, progress: ProgressSink, local_secret: str | None = None
) -> ProviderRegistry:
    """`db` keeps the local provider's tasks, so any worker process can answer for them;
    `progress` hears how far the renders running here are; `local_secret` signs its callbacks,
    the same in every worker."""
    registry = ProviderRegistry()
    registry.register(
        LocalProvider(
            db=db,
            own_url=settings.own_url,
            http=http,
            delay_s=settings.local_delay_s,
            photo_weight=settings.local_photo_weight,
            secret=local_secret,
            progress=progress,
        )
    )
    registry.register(
        KieProvider(
            api_key=settings.kie_api_key.get_secret_value(),
            base_url=settings.kie_base_url,
            http=http,
            hmac_key=settings.kie_webhook_hmac_key.get_secret_value(),
            public_url=settings.has_public_url,
        )
    )
    registry.register(
        FalProvider(
            api_key=settings.fal_key.get_secret_value(),
            queue_url=settings.fal_queue_url,
            jwks_url=settings.fal_jwks_url,
            http=http,
            public_url=settings.has_public_url,
        )
    )
    registry.register(
        ReplicateProvider(
            api_token=settings.replicate_api_token.get_secret_value(),
            base_url=settings.replicate_base_url,
            http=http,
            webhook_secret=settings.replicate_webhook_secret.get_secret_value(),
            public_url=settings.has_public_url,
        )
    )
    if settings.comfyui_url:
        # Its reports of ended prompts are signed like the local provider's callbacks, with a key of their own.
        key = hmac.new(local_secret.encode(), b"comfyui reports", hashlib.sha256).hexdigest() if local_secret else ""
        registry.register(
            ComfyUIProvider(
                base_url=settings.comfyui_url, http=http, secret=key or secrets.token_hex(32), progress=progress
            )
        )
    return registry
