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
import gc
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

#: The cyclic collector's thresholds in a serving process (CPython's defaults: 700, 10, 10).
#: Measured on 2026-12-07 with 1,000 socket clients joining a project and ten changes reaching
#: them: with the defaults the process spent ~16 s of CPU collecting (~80 full collections of
#: ~115 ms, each walking every tab's state), with these and `gc.freeze` ~2 s; CPU per change at
#: 1,000 tabs 290 -> 200 ms, resident memory +11 MB (50,000 saved no more CPU for +46 MB).
#: A serving process makes objects in bursts (a change sent to a thousand tabs) that die at
#: once: collecting every 700 of them buys nothing.
COLLECTOR_THRESHOLDS = (10_000, 10, 10)


def settle_collector() -> None:
    """Once the process is built (Reflex's compiled app, SQLAlchemy's mappers, the core): its
    objects so far live as long as it does, so the collector stops walking them (`gc.freeze`:
    a full collection then costs ~6 ms instead of ~65), and collects less often from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
