"""Runs the conformance suite once per provider, each against its own fake or mock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import respx

from core.contract import NodeKind
from core.root import Core
from core.settings import Settings
from providers.local_render import render_text_to_image
from tests.providers.harness import CDN, Harness
from tests.providers.harness_comfyui import ComfyUIHarness
from tests.providers.harness_fal import FalHarness
from tests.providers.harness_kie import KieHarness
from tests.providers.harness_local import LocalHarness
from tests.providers.harness_replicate import ReplicateHarness

HARNESSES: list[type[Harness]] = [LocalHarness, KieHarness, FalHarness, ReplicateHarness, ComfyUIHarness]


@pytest.fixture(params=HARNESSES, ids=lambda cls: cls.name)
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param()


@pytest.fixture
async def conformance_core(tmp_path: Path, database_url: str, harness: Harness) -> AsyncIterator[Core]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        public_base_url="http://testapp",
        image_fetch_allow_hosts=("cdn.test",),
        poll_start_s=0,
        retry_base_s=0.01,
        **harness.settings(),
    )
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=CDN).respond(200, content=render_text_to_image("result", "1:1"))
        # The local worker's callbacks, at the app's own address.
        router.post(url__startswith=f"{settings.own_url}/api/webhooks/").respond(200)
        core = Core.build(settings)
        harness.install(router, core.registry.get(harness.name))
        yield core
        await core.aclose()


@pytest.fixture
def node_id(conformance_core: Core, harness: Harness) -> int:
    project = conformance_core.canvas.ensure_default_project(conformance_core.accounts.local_user().id)
    node = conformance_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    conformance_core.canvas.update_node(node.id, prompt="a fox", model=harness.text_model)
    return node.id
