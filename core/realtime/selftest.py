"""The realtime self-test: one synthetic job through the real chain, hop by hop.

A user who suspects their setup (a proxy, a second worker, a missing
`PUBLIC_BASE_URL`, a provider that cannot reach the webhook URL) runs it instead of
paying for an image. The job uses the local provider, so its callback is a real
signed POST to the app's public URL; it is `Job.synthetic`, so it shows in no queue
and no node history, but its changes move the project's feed like any other, so
every open tab of the project pushes and confirms them.

Each hop waits for evidence the chain itself leaves (the change event, the notice,
timeline steps, the ledger's verdict), never for a private signal, and a failing hop
says what to check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from sqlmodel import col, select

from core.contract import JobStatus, NodeKind
from core.logs import get_logger, log_step
from core.realtime.delivery import LATE_AFTER_S
from models.tables import ChangeEvent, JobStep

if TYPE_CHECKING:
    from core.root import Core

log = get_logger("selftest")

PROMPT = "realtime self-test"
NOTICE_TIMEOUT_S = 3.0
#: Callbacks come after half the local provider's delay; this is the slack on top.
WEBHOOK_SLACK_S = 5.0
POLL_S = 0.05
#: How long a newly opened tab may take to report (its report interval plus the inbox's window).
TAB_REPORT_S = 2.0
PROBE_TIMEOUT_S = 5.0

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class Hop:
    name: str
    verdict: str  # ok | failed | skipped
    #: Milliseconds since the check started, when the hop's evidence was seen.
    at_ms: int
    detail: str = ""
    #: What to check, for a failed hop.
    fix: str = ""


class RealtimeCheck:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def run(self, project_id: int, on_hop: Callable[[Hop], Awaitable[None]] | None = None) -> list[Hop]:
        """Every hop's verdict, in chain order; `on_hop` sees each as soon as it is known."""
        hops: list[Hop] = []
        started = time.monotonic()

        async def record(name: str, verdict: str, detail: str = "", fix: str = "") -> None:
            hop = Hop(name, verdict, round((time.monotonic() - started) * 1000), detail, fix)
            hops.append(hop)
            log_step(log, "selftest.hop", project_id=project_id, hop=name, verdict=verdict, detail=detail[:300])
            if on_hop is not None:
                await on_hop(hop)

        core = self.core
        # A tab that just opened (the one that asked, say) reports within a second or so: count it.
        await _wait(lambda: bool(core.delivery.tabs(project_id)), TAB_REPORT_S)
        started = time.monotonic()
        with core.notifier.subscribe() as notices:
            try:
                view = await core.async_jobs.create_synthetic(project_id, self._model(), PROMPT)
            except Exception as exc:
                await record("job row written", FAILED, str(exc), "the database refused the write: check DATABASE_URL")
                return hops
            job_id = view.id
            core.pipeline.start_submission(job_id)
            await record("job row written", OK, f"job {job_id}")
            seq = await asyncio.to_thread(self._event_seq, job_id)
            if seq is None:
                await record(
                    "change event written", FAILED, "no change event", "the change-feed triggers are missing: migrate"
                )
                return hops
            await record("change event written", OK, f"seq {seq}")
            await self._received(record, notices, project_id, seq)
        await self._pushed_and_confirmed(record, project_id, job_id, seq)
        await self._webhook(record, job_id)
        await self._stored(record, job_id)
        log_step(
            log,
            "selftest.done",
            job_id=job_id,
            project_id=project_id,
            failed=[h.name for h in hops if h.verdict == FAILED],
        )
        return hops

    def _model(self) -> str:
        local = self.core.registry.get("local")
        return next(m.id for m in local.models if m.kind == NodeKind.TEXT_TO_IMAGE)

    def _event_seq(self, job_id: str) -> int | None:
        with self.core.db.session() as s:
            query = select(ChangeEvent.seq).where(ChangeEvent.entity == "job", ChangeEvent.entity_id == job_id)
            return s.exec(query.order_by(col(ChangeEvent.seq))).first()

    async def _received(self, record: Recorder, notices: asyncio.Queue, project_id: int, seq: int) -> None:
        """This worker's bridge would hear it; on PostgreSQL, so would every worker (LISTEN)."""
        try:
            async with asyncio.timeout(NOTICE_TIMEOUT_S):
                while True:
                    notice = await notices.get()
                    if notice.project_id == project_id and notice.seq >= seq:
                        break
            await record("change received by this worker", OK, f"notice for seq {seq}")
        except TimeoutError:
            await record(
                "change received by this worker", FAILED, "no notice", "the change-feed bridge is not running here"
            )
        listener = self.core.listener
        if listener is None:
            await record("change received by the other workers", SKIPPED, "one process on SQLite: there are none")
            return
        heard = await _wait(lambda: listener.heard(project_id) >= seq, NOTICE_TIMEOUT_S)
        if heard:
            await record("change received by the other workers", OK, f"NOTIFY for seq {seq} came back over LISTEN")
        else:
            await record(
                "change received by the other workers",
                FAILED,
                f"LISTEN connection: {listener.state}",
                "other workers hear changes over PostgreSQL LISTEN/NOTIFY: check DATABASE_URL and the listener log",
            )

    async def _pushed_and_confirmed(self, record: Recorder, project_id: int, job_id: str, seq: int) -> None:
        tabs = await asyncio.to_thread(self.core.delivery.tabs, project_id)
        if not tabs:
            for name in ("pushed to the tabs", "confirmed by each open tab"):
                await record(name, SKIPPED, "no tab has this project open")
            return
        delivery = self.core.delivery
        # The first tab that shows the change proves it was pushed (what the server sent is not evidence).
        if await _wait(lambda: delivery.fastest_sighting(project_id, seq) is not None, NOTICE_TIMEOUT_S):
            await record(
                "pushed to the tabs",
                OK,
                f"first tab showed it {delivery.fastest_sighting(project_id, seq)} ms after it was published",
            )
        else:
            await record(
                "pushed to the tabs",
                FAILED,
                f"none of {len(tabs)} open tabs showed seq {seq} within {NOTICE_TIMEOUT_S:.0f} s",
                "the change was not pushed: check that the websocket (/_event) reaches the app, through every proxy",
            )
        settled = await _wait(lambda: delivery.verdict(project_id, seq) != "", LATE_AFTER_S + 3)
        line = self._step(job_id, "feed.seen", f"seq {seq} ") or ""
        verdict = delivery.verdict(project_id, seq) if settled else "pending"
        if verdict == "seen":
            await record("confirmed by each open tab", OK, line)
        else:
            await record(
                "confirmed by each open tab",
                FAILED,
                line or f"{len(tabs)} open tabs, none confirmed",
                "a tab did not show the change: its websocket may be cut, or a proxy buffers it "
                "(allow websocket upgrades on /_event); the late tab was told to resync",
            )

    async def _webhook(self, record: Recorder, job_id: str) -> None:
        """The local provider's callback for this job is a real POST to PUBLIC_BASE_URL (`Pipeline.app_url_for`)."""
        base = self.core.settings.base_url
        wait_s = self.core.settings.local_delay_s / 2 + WEBHOOK_SLACK_S
        if await _wait(lambda: self._step(job_id, "webhook.received") is not None, wait_s):
            await record("webhook reachable at the public URL", OK, f"callback arrived at {base}/api/webhooks/local/…")
            return
        try:
            answer = await self.core.http.get(f"{base}/healthz", timeout=PROBE_TIMEOUT_S)
            reason = f"{base} answers {answer.status_code}, but the callback did not arrive"
            fix = "PUBLIC_BASE_URL must lead to this app (check the tunnel or proxy forwards /api/webhooks/)"
        except httpx.HTTPError as exc:
            reason = f"{base} is not reachable from this machine ({type(exc).__name__}: {exc})"
            fix = "the webhook URL is not reachable from this machine: set PUBLIC_BASE_URL to an address of this app"
        await record("webhook reachable at the public URL", FAILED, reason, fix)

    async def _stored(self, record: Recorder, job_id: str) -> None:
        settings = self.core.settings
        timeout_s = settings.local_delay_s + settings.poll_cap_s + WEBHOOK_SLACK_S
        jobs = self.core.jobs
        await _wait(lambda: jobs.get(job_id).status.is_terminal, timeout_s)
        job = await asyncio.to_thread(jobs.get, job_id)
        if job.status != JobStatus.COMPLETED or not job.image_path:
            await record(
                "image stored and served",
                FAILED,
                job.error or f"the job is still {job.status.value}",
                "the result could not be fetched: the local provider publishes it at the app's own address "
                f"({settings.own_url})",
            )
            return
        # Served by this app at its own address, as a tab would load it.
        url = f"http://127.0.0.1:{settings.port}{self.core.links.sign(job.image_path)}"
        try:
            answer = await self.core.http.get(url, timeout=PROBE_TIMEOUT_S)
            served = answer.status_code == 200 and answer.headers.get("content-type", "").startswith("image/")
            detail = f"{job.image_path}: HTTP {answer.status_code}, {len(answer.content)} bytes"
        except httpx.HTTPError as exc:
            served, detail = False, f"{job.image_path}: {type(exc).__name__}"
        fix = "" if served else "the media route did not serve the stored file: check DATA_DIR is shared by all workers"
        await record("image stored and served", OK if served else FAILED, detail, fix)

    def _step(self, job_id: str, step: str, detail_prefix: str = "") -> str | None:
        """The detail of the job's first `step` whose detail starts with `detail_prefix`."""
        with self.core.db.session() as s:
            query = select(JobStep.detail).where(JobStep.job_id == job_id, JobStep.step == step)
            if detail_prefix:
                query = query.where(col(JobStep.detail).startswith(detail_prefix))
            return s.exec(query.order_by(col(JobStep.id).desc())).first()


Recorder = Callable[..., Awaitable[None]]


async def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `condition` (a quick database read, run in a thread) became true in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(POLL_S)
    return False
