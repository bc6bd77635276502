"""The process's one `Core` and its room bridge, built from the environment when the app is imported."""

from __future__ import annotations

from core.logs import configure_logging
from core.root import Core
from core.settings import get_settings
from rxapp.bridge import RoomBridge

settings = get_settings()
configure_logging(settings.log_format, settings.log_level, settings.secrets)
core = Core.build(settings)
bridge = RoomBridge(core)
