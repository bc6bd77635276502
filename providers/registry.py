"""Which providers this process runs; the one place a new provider is switched on."""

from __future__ import annotations

import httpx

from core.contract import ProviderRegistry
from core.db import Database
from core.settings import Settings
from providers.fal import FalProvider
from providers.kie import KieProvider
from providers.local import LocalProvider
from providers.replicate import ReplicateProvider


def build_registry(
    settings: Settings, http: httpx.AsyncClient, db: Database, local_secret: str | None = None
) -> ProviderRegistry:
    """`db` keeps the local provider's tasks, so any worker process can answer for them;
    `local_secret` signs its callbacks, the same in every worker."""
    registry = ProviderRegistry()
    registry.register(
        LocalProvider(
            db=db,
            base_url=settings.base_url,
            http=http,
            delay_s=settings.local_delay_s,
            secret=local_secret,
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
    return registry
