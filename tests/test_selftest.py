"""The realtime self-test runs a synthetic job through the real chain and judges each hop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from core.realtime.delivery import TabReport
from core.realtime.selftest import FAILED, OK, SKIPPED, Hop, RealtimeCheck
from core.root import Core
from models.tables import utcnow
from tests.wait import eventually


@pytest.fixture(autouse=True)
async def listening(core: Core) -> AsyncIterator[None]:
    """On PostgreSQL the app runs its LISTEN connection; so does the test."""
    if core.listener is None:
        yield
        return
    task = asyncio.create_task(core.listener.run())
    await asyncio.wait_for(core.listener.listening.wait(), 10)
    yield
    task.cancel()


async def _tab(core: Core, project_id: int, tab_id: str) -> None:
    """A browser tab that shows every change at once and says so."""
    while True:
        seq = core.canvas.snapshot(project_id).seq
        await asyncio.to_thread(core.delivery.confirm, [TabReport(project_id, tab_id, seq, utcnow(), "Chrome 131")])
        await asyncio.sleep(0.05)


async def test_every_hop_passes_and_the_job_stays_out_of_the_queue(core: Core, project_id: int) -> None:
    seen: list[Hop] = []

    async def shown(hop: Hop) -> None:
        seen.append(hop)

    tab = asyncio.create_task(_tab(core, project_id, "tab-one"))
    # The tab was open before the check started.
    await eventually(lambda: core.delivery.tabs(project_id), what="the tab to have reported")
    try:
        hops = await RealtimeCheck(core).run(project_id, shown)
    finally:
        tab.cancel()
    assert seen == hops
    verdicts = {h.name: h.verdict for h in hops}
    assert verdicts == {
        "job row written": OK,
        "change event written": OK,
        "change received by this worker": OK,
        "change received by the other workers": SKIPPED if core.listener is None else OK,
        "pushed to the tabs": OK,
        "confirmed by each open tab": OK,
        "webhook reachable at the public URL": OK,
        "image stored and served": OK,
    }, hops
    assert "seen by 1 of 1 tabs" in next(h.detail for h in hops if h.name == "confirmed by each open tab")
    assert all(a.at_ms <= b.at_ms for a, b in itertools.pairwise(hops))
    snapshot = core.canvas.snapshot(project_id)
    assert snapshot.jobs == [] and all(n.history == [] for n in snapshot.nodes)


async def test_without_open_tabs_the_tab_hops_are_skipped_not_failed(core: Core, project_id: int) -> None:
    hops = await RealtimeCheck(core).run(project_id)
    by_name = {h.name: h for h in hops}
    assert by_name["pushed to the tabs"].verdict == SKIPPED
    assert by_name["confirmed by each open tab"].detail == "no tab has this project open"
    assert FAILED not in {h.verdict for h in hops}
