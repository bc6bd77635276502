"""Reflex configuration: production serves frontend, websocket and API on one port."""

import os

import reflex as rx

from core.settings import get_settings

config = rx.Config(
    app_name="rxapp",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    frontend_port=int(os.environ.get("PORT", "3000")),
    backend_port=int(os.environ.get("PORT", "3000")),
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="violet"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
    cors_allowed_origins=list(get_settings().allowed_origins),
)
