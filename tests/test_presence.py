"""Presence: entries renewed by their worker, removed when their tab leaves, expired when nobody renews them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import redis

from core.realtime.presence import MemoryPresence, PersonView, PresenceStore, RedisPresence, TabPresence, people
from tests.isolation import redis_url

REDIS_URL = redis_url()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[PresenceStore]:
    if request.param == "memory":
        yield MemoryPresence(5.0, clock)
        return
    redis.Redis.from_url(REDIS_URL).ping()  # fails, never skips, without Redis
    built = RedisPresence(REDIS_URL, 5.0, clock)
    yield built
    await built.aclose()


def fresh_project() -> int:
    """A project id no other run of this test uses in the shared Redis."""
    return random.randrange(10**9, 2 * 10**9)


ANN_1 = TabPresence("tab-a1", 1, "ann@example.com", node_id=7)
ANN_2 = TabPresence("tab-a2", 1, "ann@example.com")
BO = TabPresence("tab-b", 2, "bo@example.com", node_id=7)


def test_people_are_one_line_each_with_their_tabs_and_nodes() -> None:
    assert people([BO, ANN_1, ANN_2]) == [
        PersonView("ann@example.com", tabs=2, nodes=[7]),
        PersonView("bo@example.com", tabs=1, nodes=[7]),
    ]
    assert people([]) == []


async def test_a_tab_that_leaves_is_gone_at_once(store: PresenceStore) -> None:
    project = fresh_project()
    await store.renew(project, [ANN_1, ANN_2, BO], [])
    assert sorted(t.tab for t in await store.read(project)) == ["tab-a1", "tab-a2", "tab-b"]
    await store.renew(project, [ANN_1], ["tab-b"])
    assert sorted(t.tab for t in await store.read(project)) == ["tab-a1", "tab-a2"]
    assert await store.read(fresh_project()) == []  # another project sees none of them


async def test_an_entry_nobody_renews_expires(store: PresenceStore, clock: Clock) -> None:
    project = fresh_project()
    await store.renew(project, [ANN_1, BO], [])
    clock.now += 3
    await store.renew(project, [BO], [])  # Bo's worker still renews; Ann's died
    clock.now += 2.5
    assert [t.tab for t in await store.read(project)] == ["tab-b"]
    clock.now += 5
    assert await store.read(project) == []


async def test_a_renewal_carries_the_node_a_tab_moved_to(store: PresenceStore) -> None:
    project = fresh_project()
    await store.renew(project, [ANN_1], [])
    await store.renew(project, [TabPresence("tab-a1", 1, "ann@example.com", node_id=9)], [])
    assert people(await store.read(project)) == [PersonView("ann@example.com", tabs=1, nodes=[9])]
