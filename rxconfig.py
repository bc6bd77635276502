"""Reflex configuration: production serves frontend, websocket and API on one port."""

import reflex as rx

from core.settings import get_settings

settings = get_settings()

config = rx.Config(
    app_name="rxapp",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    frontend_port=settings.port,
    backend_port=settings.port,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="violet"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
    cors_allowed_origins=list(settings.allowed_origins),
)
