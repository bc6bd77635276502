"""Socket records of dead workers swept, never a live one's; a Redis that lost its data noticed and healed."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import redis.asyncio
from reflex.event import Event
from reflex.state import StateUpdate
from reflex.utils.token_manager import RedisTokenManager, SocketRecord

from rxapp.realtime.ghosts import WorkerHeartbeat, heartbeat_key
from tests.isolation import redis_url

URL = redis_url()  # this worker's own database, flushed before and after
PREFIX = RedisTokenManager._token_socket_record_prefix
REOPEN = Event(name="reopen")


class Namespace:
    def __init__(self, tokens: RedisTokenManager) -> None:
        self._token_manager = tokens
        self.sent: list[tuple[StateUpdate, str]] = []

    async def emit_update(self, update: StateUpdate, token: str) -> None:
        self.sent.append((update, token))


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def records(client: redis.asyncio.Redis) -> dict[str, str]:
    """token -> the instance id its socket record names."""
    found = {}
    async for key in client.scan_iter(f"{PREFIX}*"):
        found[key.decode().removeprefix(PREFIX)] = pickle.loads(await client.get(key)).instance_id
    return found


async def store(client: redis.asyncio.Redis, token: str, instance_id: str) -> None:
    await client.set(f"{PREFIX}{token}", pickle.dumps(SocketRecord(instance_id=instance_id, sid=f"sid-{token}")))


async def test_only_records_of_a_worker_whose_heartbeat_is_gone_at_two_sweeps_are_deleted(
    client: redis.asyncio.Redis,
) -> None:
    heartbeat = WorkerHeartbeat(SimpleNamespace(event_namespace=None), URL, REOPEN)  # type: ignore[arg-type]
    for token, owner in (("a", "dead"), ("b", "alive"), ("c", "me"), ("d", "starting")):
        await store(client, token, owner)
    await client.set(heartbeat_key("alive"), "1", ex=10)

    # First sweep: "dead" and "starting" are only suspects; nothing is deleted yet.
    assert await heartbeat.sweep("me") == 0
    # "starting" beats before the next sweep (a worker that just began); "dead" never does.
    await client.set(heartbeat_key("starting"), "1", ex=10)
    assert await heartbeat.sweep("me") == 1
    assert await records(client) == {"b": "alive", "c": "me", "d": "starting"}


async def test_a_record_rewritten_between_the_read_and_the_delete_stays(client: redis.asyncio.Redis) -> None:
    heartbeat = WorkerHeartbeat(SimpleNamespace(event_namespace=None), URL, REOPEN)  # type: ignore[arg-type]
    await store(client, "a", "dead")
    assert await heartbeat.sweep("me") == 0  # suspect
    real_mget = heartbeat._redis.mget

    async def relinked_meanwhile(keys):  # the tab reconnects to "alive" right after the sweep read it
        values = await real_mget(keys)
        await store(client, "a", "alive")
        return values

    heartbeat._redis.mget = relinked_meanwhile  # type: ignore[method-assign]
    assert await heartbeat.sweep("me") == 0
    assert await records(client) == {"a": "alive"}


async def test_a_worker_that_finds_its_heartbeat_gone_has_its_own_tabs_reopen_their_page(
    client: redis.asyncio.Redis,
) -> None:
    tokens = RedisTokenManager(redis.asyncio.Redis.from_url(URL))
    me = tokens.instance_id
    tokens.token_to_socket = {
        "t1": SocketRecord(instance_id=me, sid="s1"),
        "t2": SocketRecord(instance_id="another worker", sid="s2"),
    }
    namespace = Namespace(tokens)
    heartbeat = WorkerHeartbeat(SimpleNamespace(event_namespace=namespace), URL, REOPEN)  # type: ignore[arg-type]

    assert await heartbeat._beat(me) is False  # first beat: the key is new
    assert await heartbeat._beat(me) is True
    await client.flushdb()  # Redis restarted: states, records and heartbeats gone
    assert await heartbeat._beat(me) is False
    await heartbeat._recover(tokens, me)

    assert namespace.sent == [(StateUpdate(events=[REOPEN]), "t1")]  # only this worker's own tab
    assert await records(client) == {}  # Reflex's records are its own business
    await tokens.close()
