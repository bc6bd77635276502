"""Which providers this process runs; the one place a new provider is switched on."""

from __future__ import annotations

import os

import httpx

from models.settings import Settings
from providers.base import ProviderRegistry
from providers.local import LocalProvider


def build_registry(settings: Settings, http: httpx.AsyncClient) -> ProviderRegistry:
    registry = ProviderRegistry()
    registry.register(
        LocalProvider(
            outputs_dir=settings.data_dir / "local-provider",
            base_url=settings.base_url,
            http=http,
            delay_s=settings.local_delay_s,
            secret=os.environ.get("LOCAL_PROVIDER_SECRET") or None,
        )
    )
    return registry
