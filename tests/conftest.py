"""A whole core per test: temp SQLite (or a fresh PostgreSQL database with
`TEST_DATABASE=postgres`), fast local provider, HTTP routed in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from core.contract import NodeKind
from core.root import Core
from core.settings import Settings, env_names
from rxapp.api import build_api
from tests.postgres import fresh_database, wants_postgres

pytest_plugins = ["tests.kie_mock"]


class LateBoundASGI:
    """An ASGI app set after the client is built (the core's API needs the core)."""

    app: object = None

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        await self.app(scope, receive, send)  # type: ignore[operator]


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Settings(...)` reads the environment too: tests see only what they pass."""
    for name in env_names():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def database_url() -> Iterator[str]:
    """Empty means the default, SQLite in the test's data directory."""
    if not wants_postgres():
        yield ""
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, public_base_url="http://testapp", local_delay_s=0.05)


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    asgi = LateBoundASGI()
    core = Core.build(settings, transport=httpx.ASGITransport(app=asgi))
    asgi.app = build_api(core)
    yield core
    await core.aclose()


@pytest.fixture
async def client(core: Core) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api(core)), base_url="http://testapp") as c:
        yield c


@pytest.fixture
def project_id(core: Core) -> int:
    return core.canvas.ensure_default_project(core.accounts.local_user().id).id


@pytest.fixture
def node_id(core: Core, project_id: int) -> int:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a red fox in snow")
    return node.id
