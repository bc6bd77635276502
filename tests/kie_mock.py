"""KIE.ai and its CDN mocked with respx, and a core configured to use them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import respx

from core.contract import NodeKind
from core.root import Core
from core.settings import Settings
from providers.kie import TEXT_MODEL
from providers.local_render import render_text_to_image

KIE = "https://kie.test"
IMAGE_URL = "https://cdn.test/result.png"
CREATE = f"{KIE}/api/v1/jobs/createTask"
RECORD = f"{KIE}/api/v1/jobs/recordInfo"


def ok(data: dict) -> httpx.Response:
    return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})


def record(state: str) -> httpx.Response:
    data = {"taskId": "t1", "state": state}
    if state == "success":
        data["resultJson"] = json.dumps({"resultUrls": [IMAGE_URL]})
    return ok(data)


@pytest.fixture
def kie_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        public_base_url="http://testapp",
        kie_api_key="k",
        kie_base_url=KIE,
        image_fetch_allow_hosts=("cdn.test",),
        poll_start_s=0,
        retry_base_s=0.01,
    )


@pytest.fixture
def kie_api() -> Iterator[respx.MockRouter]:
    """KIE.ai and its CDN, mocked for the app's HTTP client."""
    with respx.mock(assert_all_called=False) as mock:
        mock.get(IMAGE_URL).respond(200, content=render_text_to_image("x", "1:1"))
        yield mock


@pytest.fixture
async def kie_core(kie_settings: Settings, kie_api: respx.MockRouter) -> AsyncIterator[Core]:
    core = Core.build(kie_settings)
    yield core
    await core.aclose()


@pytest.fixture
def kie_node(kie_core: Core) -> int:
    """A text-to-image node on KIE.ai's model, with a prompt."""
    project = kie_core.canvas.ensure_default_project(kie_core.accounts.local_user().id)
    node = kie_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    kie_core.canvas.update_node(node.id, prompt="a fox", model=TEXT_MODEL)
    return node.id


async def submitted(core: Core, node_id: int) -> str:
    """Generate on the node and let its first submission end (submitted, waiting or failed)."""
    view = await core.pipeline.generate(node_id)
    await core.pipeline.drain()
    return view.id
