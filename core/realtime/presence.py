"""Who has a project open: one entry per tab, renewed while its websocket lives, expiring when not.

The web layer renews the entries of the tabs connected to it (`renew`, several times per
`timeout_s`) and says which of its tabs left; a tab that closed or whose browser died is
gone from its socket's room at once, and an entry whose worker died stops being renewed
and expires after `timeout_s`. Entries live in Redis when the app runs with it (every
worker sees every tab), in this process's memory otherwise. A reader gets the live
entries and folds them into one line per person (`people`).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import redis.asyncio

#: Redis hash of a project's tabs: field = tab (socket id), value = the entry as JSON.
KEY_PREFIX = "canvas:presence:"


@dataclass(frozen=True)
class TabPresence:
    """One open tab: whose, and the node whose prompt it is typing in (0: none)."""

    tab: str
    user_id: int
    email: str
    node_id: int = 0


@dataclass(frozen=True)
class PersonView:
    """One line of the Presence list."""

    email: str
    tabs: int
    #: Nodes whose prompt one of their tabs is typing in.
    nodes: list[int]


def people(tabs: Iterable[TabPresence]) -> list[PersonView]:
    """One entry per person, ordered by email: their tab count and the nodes they type in."""
    by_user: dict[int, list[TabPresence]] = {}
    for tab in tabs:
        by_user.setdefault(tab.user_id, []).append(tab)
    lines = [
        PersonView(
            email=group[0].email,
            tabs=len(group),
            nodes=sorted({t.node_id for t in group if t.node_id}),
        )
        for group in by_user.values()
    ]
    return sorted(lines, key=lambda line: line.email)


class PresenceStore(ABC):
    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
        self.timeout_s = timeout_s
        self._clock = clock

    @abstractmethod
    async def renew(self, project_id: int, tabs: list[TabPresence], gone: list[str]) -> None:
        """Keep `tabs` present for another `timeout_s`; remove the `gone` ones now."""

    @abstractmethod
    async def read(self, project_id: int) -> list[TabPresence]:
        """The project's tabs whose entry has not expired (expired ones are removed)."""

    async def aclose(self) -> None:
        return None


class MemoryPresence(PresenceStore):
    """One process: the embedded default."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__(timeout_s, clock)
        self._projects: dict[int, dict[str, tuple[TabPresence, float]]] = {}

    async def renew(self, project_id: int, tabs: list[TabPresence], gone: list[str]) -> None:
        entries = self._projects.setdefault(project_id, {})
        until = self._clock() + self.timeout_s
        entries.update({tab.tab: (tab, until) for tab in tabs})
        for tab_id in gone:
            entries.pop(tab_id, None)

    async def read(self, project_id: int) -> list[TabPresence]:
        entries = self._projects.get(project_id, {})
        now = self._clock()
        for tab_id in [t for t, (_, until) in entries.items() if until <= now]:
            del entries[tab_id]
        if not entries:
            self._projects.pop(project_id, None)
        return [tab for tab, _ in entries.values()]


class RedisPresence(PresenceStore):
    """Every worker's tabs in one hash per project; the expiry is in each value (one clock: the writer's)."""

    def __init__(self, url: str, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__(timeout_s, clock)
        self._redis = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    async def renew(self, project_id: int, tabs: list[TabPresence], gone: list[str]) -> None:
        key = f"{KEY_PREFIX}{project_id}"
        until = self._clock() + self.timeout_s
        async with self._redis.pipeline(transaction=False) as pipe:
            if tabs:
                pipe.hset(key, mapping={tab.tab: json.dumps({**asdict(tab), "until": until}) for tab in tabs})
                # The whole hash goes when nobody renews it any more (every worker died).
                pipe.expire(key, max(1, round(self.timeout_s * 2)))
            if gone:
                pipe.hdel(key, *gone)
            await pipe.execute()

    async def read(self, project_id: int) -> list[TabPresence]:
        key = f"{KEY_PREFIX}{project_id}"
        raw: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[misc]  # redis-py types both clients
        now, live, expired = self._clock(), [], list[str]()
        for field, value in raw.items():
            entry = json.loads(value)
            if entry.pop("until") <= now:
                expired.append(field.decode())
            else:
                live.append(TabPresence(**entry))
        if expired:
            await self._redis.hdel(key, *expired)  # type: ignore[misc]
        return live

    async def aclose(self) -> None:
        await self._redis.aclose()


def presence_store(redis_url: str, timeout_s: float) -> PresenceStore:
    return RedisPresence(redis_url, timeout_s) if redis_url else MemoryPresence(timeout_s)
