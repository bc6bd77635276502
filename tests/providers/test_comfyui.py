"""ComfyUI against its fake (e2e/fakes/comfyui_server.py, a process on loopback): models, the
built-in workflows, progress and previews from the websocket, readable refusals, and Cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from core.contract import JobStatus, NodeKind, ProviderError, TaskRef
from core.jobs.progress import ProgressRow
from core.root import Core
from core.settings import Settings
from e2e.fakes.comfyui_server import CHECKPOINTS
from e2e.server import FakeProviderServer
from providers.comfyui import ComfyUIProvider, refusal
from rxapp.api import build_api
from tests.isolation import free_port
from tests.wait import TERMINAL, eventually, job_reaches

TEXT = f"comfyui/{CHECKPOINTS[0]}"


class AppAtItsOwnAddress(httpx.AsyncBaseTransport):
    """The app's own address (the provider's reports) in-process; everything else over the network."""

    def __init__(self, own_url: str) -> None:
        self.own_url = own_url
        self.app: httpx.ASGITransport | None = None
        self.network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self.own_url) and self.app is not None:
            return await self.app.handle_async_request(request)
        return await self.network.handle_async_request(request)


@pytest.fixture(scope="module")
def fake_comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer("comfyui_server", tmp_path_factory.mktemp("comfyui") / "comfyui.log", "unused")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def comfy_core(tmp_path: Path, fake_comfyui: FakeProviderServer) -> AsyncIterator[Core]:
    fake_comfyui.configure(steps=6, step_s=0.1)
    settings = Settings(
        data_dir=tmp_path, public_base_url="http://testapp", comfyui_url=fake_comfyui.url, poll_start_s=5
    )
    transport = AppAtItsOwnAddress(settings.own_url)
    core = Core.build(settings, transport=transport)
    transport.app = httpx.ASGITransport(app=build_api(core))
    yield core
    await core.aclose()


def comfyui(core: Core) -> ComfyUIProvider:
    provider = core.registry.get("comfyui")
    assert isinstance(provider, ComfyUIProvider)
    return provider


def node(core: Core, prompt: str, model: str = TEXT, kind: NodeKind = NodeKind.TEXT_TO_IMAGE) -> int:
    project = core.canvas.ensure_default_project(core.accounts.local_user().id)
    view = core.canvas.add_node(project.id, kind)
    core.canvas.update_node(view.id, prompt=prompt, model=model)
    return view.id


def rows_of(core: Core) -> list[ProgressRow]:
    rows: list[ProgressRow] = []

    async def record(row: ProgressRow) -> None:
        rows.append(row)

    core.progress.subscribe(record)
    return rows


async def test_checkpoints_become_text_and_edit_models(comfy_core: Core) -> None:
    ids = [m.id for m in comfyui(comfy_core).models]
    assert ids == [f"comfyui/{name}{suffix}" for name in CHECKPOINTS for suffix in ("", "/edit")]
    kinds = {m.kind for m in comfyui(comfy_core).models}
    assert kinds == {NodeKind.TEXT_TO_IMAGE, NodeKind.IMAGE_EDIT}


async def test_a_text_to_image_job_reports_percent_and_previews_then_completes(comfy_core: Core) -> None:
    rows = rows_of(comfy_core)
    job = await comfy_core.pipeline.generate(node(comfy_core, "a red barn, 35mm"))
    done = await job_reaches(comfy_core, job.id, *TERMINAL, timeout_s=20)
    assert (done.status, done.error) == (JobStatus.COMPLETED, None)  # by its own report, long before a poll
    assert done.image_path
    percents = [r.percent for r in rows if r.id == job.id and r.percent is not None]
    assert len(percents) >= 2 and percents == sorted(percents), rows
    assert any(r.preview_url for r in rows if r.id == job.id)
    # The job's progress row goes right after its terminal write, in the same apply: the status
    # read above can come between the two (seen once in a clean-clone run, phase `storing`).
    await eventually(lambda: comfy_core.progress.rows(done.project_id), lambda left: left == [], what="no row left")


async def test_an_edit_uploads_its_input_and_runs_image_to_image(
    comfy_core: Core, fake_comfyui: FakeProviderServer
) -> None:
    first = await comfy_core.pipeline.generate(node(comfy_core, "a lighthouse"))
    await job_reaches(comfy_core, first.id, *TERMINAL, timeout_s=20)
    source = comfy_core.jobs.get(first.id)
    edit = node(comfy_core, "at night", f"{TEXT}/edit", NodeKind.IMAGE_EDIT)
    assert source.image_path
    comfy_core.canvas.change_inputs(edit, add=[source.image_path])
    job = await comfy_core.pipeline.generate(edit)
    done = await job_reaches(comfy_core, job.id, *TERMINAL, timeout_s=20)
    assert (done.status, done.error) == (JobStatus.COMPLETED, None)


async def test_a_refused_workflow_and_a_failing_sampler_read_well(
    comfy_core: Core, fake_comfyui: FakeProviderServer
) -> None:
    provider = comfyui(comfy_core)
    # A checkpoint deleted at the server after the app listed it: ComfyUI's 400 with node_errors.
    provider.models = (*provider.models, replace(provider.models[0], id="comfyui/gone.safetensors"))
    job = await comfy_core.pipeline.generate(node(comfy_core, "a boat", "comfyui/gone.safetensors"))
    done = await job_reaches(comfy_core, job.id, *TERMINAL, timeout_s=20)
    assert done.error is not None
    assert "ComfyUI refused the workflow (Prompt outputs failed validation)" in done.error
    assert "CheckpointLoaderSimple #4: Value not in list: ckpt_name: 'gone.safetensors'" in done.error

    fake_comfyui.configure(steps=6, step_s=0.05, fail_sampler=True)
    job = await comfy_core.pipeline.generate(node(comfy_core, "a train"))
    done = await job_reaches(comfy_core, job.id, *TERMINAL, timeout_s=20)
    assert done.status == JobStatus.FAILED
    oom = "Allocation on device 0 would exceed allowed memory. (out of memory)"
    assert done.error == f"ComfyUI failed in KSampler: {oom}"


def test_refusal_reads_comfyuis_documented_shape() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {"3": {"errors": [{"message": "Required input is missing", "details": "model"}]}},
    }
    assert refusal(body) == (
        "ComfyUI refused the workflow (Prompt outputs failed validation): node #3: Required input is missing: model"
    )


async def test_a_server_that_is_down_says_so(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        provider = ComfyUIProvider(base_url=down, http=http, secret="s", progress=lambda *_: None)
        assert all(m.disabled_reason.startswith(f"ComfyUI at {down} did not answer") for m in provider.models)
        with pytest.raises(ProviderError) as caught:
            await provider.query(TaskRef("p1"))
    assert caught.value.retryable
    assert caught.value.message == f"ComfyUI at {down} is unreachable (ConnectError): is it running?"


async def test_cancel_deletes_a_waiting_prompt_and_interrupts_only_its_own_running_one(
    comfy_core: Core, fake_comfyui: FakeProviderServer
) -> None:
    fake_comfyui.configure(steps=20, step_s=0.1)
    rows = rows_of(comfy_core)
    running = await comfy_core.pipeline.generate(node(comfy_core, "first"))
    await job_reaches(comfy_core, running.id, JobStatus.SUBMITTED, timeout_s=10)  # queued first at ComfyUI
    waiting = await comfy_core.pipeline.generate(node(comfy_core, "second"))
    await job_reaches(comfy_core, waiting.id, JobStatus.SUBMITTED, timeout_s=10)
    await eventually(
        lambda: [(r.phase, r.position) for r in rows if r.id == waiting.id],
        lambda seen: ("waiting", 1) in seen,
        what="position 1 reported",
    )
    assert await comfy_core.pipeline.cancel(waiting.id)
    assert fake_comfyui.state("state")["interrupts"] == []  # the running prompt is someone else's
    await eventually(lambda: fake_comfyui.state("state")["history"], lambda h: len(h) >= 1, what="first done")
    await job_reaches(comfy_core, running.id, JobStatus.COMPLETED, timeout_s=20)
    history = fake_comfyui.state("state")["history"]
    assert comfy_core.jobs.get(waiting.id).provider_task_id not in history  # it never ran

    third = await comfy_core.pipeline.generate(node(comfy_core, "third"))
    await eventually(lambda: [r.percent for r in rows if r.id == third.id], any, what="third running")
    assert await comfy_core.pipeline.cancel(third.id)
    prompt_id = comfy_core.jobs.get(third.id).provider_task_id
    assert fake_comfyui.state("state")["interrupts"] == [prompt_id]
