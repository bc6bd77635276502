"""Reflex configuration: one port in production, plugins kept minimal."""

import os

import reflex as rx

config = rx.Config(
    app_name="rxapp",
    telemetry_enabled=False,
    plugins=[rx.plugins.SitemapPlugin()] if False else [],
    disable_plugins=["reflex.plugins.sitemap.SitemapPlugin"],
)
