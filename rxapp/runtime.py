"""The web layer's composition root: the process's one `Core` and its room bridge.

Nothing is built when this module is imported: `core` stands for the process's `Core` and
builds it from the environment (settings, database and its migrations, providers) the first
time something uses it, once per process. The app module uses it first (it mounts the
providers' routes); importing a state or a component builds nothing, so a test or a tool that
imports them does not create a database under `DATA_DIR`. The background work starts with the
app's lifespan (`core.worker.Worker`, in rxapp/rxapp.py). Tests build their own `Core`.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from core.logs import configure_logging
from core.root import Core
from core.settings import get_settings
from rxapp.realtime.bridge import RoomBridge


@functools.cache
def built_core() -> Core:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level, settings.secrets)
    return Core.build(settings)


class _OnFirstUse:
    """Forwards every attribute to the process's `Core`, building it on the first one."""

    def __getattr__(self, name: str) -> Any:
        return getattr(built_core(), name)


core = cast(Core, _OnFirstUse())
bridge = RoomBridge(core)
