"""The product's speed targets, measured against the real app in a real browser.

`make bench` starts the production app and a fake KIE.ai on loopback, drives
Debian's Chromium with Playwright, prints one table and writes bench/results.json.
Not part of `make test`: numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlmodel import col, select

from bench.derivatives import measure as derivative_rows
from bench.derivatives import photo
from bench.floor import budget_ms, floor_row
from bench.floor import measure as floor_measure
from bench.progress import progress_suite
from bench.sockets import fan_out, group_cpu_s, machine_busy_s
from core.contract import JobStatus
from core.db import Database
from e2e.conftest import CHROMIUM_ARGS
from e2e.fakes.render import PHOTO_WEIGHT_ENV
from e2e.helpers import model_node, open_canvas
from e2e.seed import SampleError, Seeder, seeder_of
from e2e.server import AppServer, FakeProviderServer, free_port, scaled_cluster
from models.tables import Job
from providers.local_render import render_text_to_image

HERE = Path(__file__).resolve().parent
KIE_KEY, KIE_HMAC = "bench-kie-key", "bench-kie-hmac"
#: The full browser, as a user runs it: its timings are the product's (the end-to-end suite drives
#: the cheaper headless shell, `e2e.conftest.CHROMIUM`).
CHROMIUM = "/usr/bin/chromium"
MODEL = "google/nano-banana"
PG_WORKERS = 3
#: Completions in the 10 KB sample of the socket tier: enough that the app's idle loops are noise.
SMALL_COMPLETIONS = 200
#: The ingestion tier's jobs and how many of their callbacks are in flight at once (the floor's too).
INGESTION_JOBS, INGESTION_CONCURRENCY = 400, 32
BENCH_REDIS_DB = 8  # the benchmark's own Redis database, flushed before and after
#: The load tier (bench/load.py): simulated users over projects, for a fixed time.
LOAD_USERS, LOAD_SPAWN_PER_S, LOAD_SECONDS, LOAD_PROJECTS = 12, 4, 30, 4

WATCH_RESULTS = """() => {
  // When each result image (by src) was loaded, and when its ThumbHash placeholder was painted
  // (the frame after its row rendered it with a data-URL background).
  window.__seen = {};
  window.__painted = {};
  const check = () => document.querySelectorAll('img[alt^="Result"]').forEach(img => {
    const src = img.getAttribute('src');
    if (!(src in window.__painted) && getComputedStyle(img).backgroundImage.startsWith('url("data:')) {
      window.__painted[src] = 0;
      requestAnimationFrame(() => { window.__painted[src] = Date.now(); });
    }
    if (window.__seen[src]) return;
    if (img.complete && img.naturalWidth) window.__seen[src] = Date.now();
    else img.addEventListener('load', () => { window.__seen[src] ??= Date.now(); }, {once: true});
  });
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""

#: When the placeholder of `src` was painted (0 or undefined: never), read after two frames.
AFTER_NEXT_FRAME = """(src) => new Promise((done) =>
  requestAnimationFrame(() => requestAnimationFrame(() => done(window.__painted[src]))))"""

WATCH_ROWS = """() => {
  // When each job's row first showed (by job id), and each Generate click.
  window.__rows = {optimistic: [], real: {}};
  let lastOptimistic = 0;
  const check = () => {
    const o = document.querySelectorAll('[data-optimistic=true]').length;
    if (o > lastOptimistic) window.__rows.optimistic.push(performance.now());
    lastOptimistic = o;
    document.querySelectorAll('[data-testid=queue-row][data-job-id]').forEach((row) => {
      window.__rows.real[row.dataset.jobId] ??= Date.now();
    });
  };
  check();
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true});
  document.addEventListener('click', (e) => {
    if (e.target.closest('button')?.textContent === 'Generate') {
      window.__clicks = window.__clicks || [];
      window.__clicks.push({perf: performance.now(), wall: Date.now()});
    }
  }, true);
}"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Results:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, metric: str, value: str, target: str = "", met: bool | None = None, note: str = "") -> None:
        verdict = "" if met is None else ("met" if met else "NOT met")
        self.rows.append({"metric": metric, "value": value, "target": target, "verdict": verdict, "note": note})
        print(f"  {metric}: {value} {target} {verdict} {note}", flush=True)


def rss_bytes(pgid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total


def new_project(browser: Browser, app: AppServer) -> tuple[Page, str]:
    page = browser.new_page()
    open_canvas(page, app.url)
    before = page.url
    page.get_by_role("button", name="New project").click()
    page.wait_for_url(lambda u: u != before)
    open_canvas(page, page.url)
    return page, page.url


def webhook_to_visible(
    browser: Browser,
    app: AppServer,
    kie: FakeProviderServer,
    tabs: int,
    runs: int,
    results: Results,
    db: Database,
    polling_tabs: int = 0,
    confirmations: bool = True,
    at_click: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """`confirmations=False` drops the tabs' delivery reports, to measure what they cost;
    `at_click` is called just before each Generate click (to read the app's CPU)."""
    driver, url = new_project(browser, app)
    pages = [driver]
    for _ in range(tabs - 1):
        page = browser.new_page()
        open_canvas(page, url)
        pages.append(page)
    if not confirmations:
        for page in pages:
            page.route("**/api/feed/seen", lambda route: route.abort())
    pollers = []
    for _ in range(polling_tabs):
        page = browser.new_page()
        open_canvas(page, url)
        pollers.append(page)
    for page in pages:
        page.evaluate(WATCH_RESULTS)
        page.evaluate(WATCH_ROWS)
    node = model_node(driver, "bench 0", MODEL)
    push: list[float] = []
    painted: list[float] = []
    polled: list[float] = []
    other_rows: list[float] = []
    for run in range(runs):
        prompt = f"bench {tabs} tabs run {run} {time.time()}"
        field_ = node.get_by_label("Prompt")
        field_.fill(prompt)
        field_.press("Tab")
        expect(pages[-1].get_by_label("Prompt")).to_have_value(prompt)
        known = set(_job_ids(driver))
        if at_click is not None:
            at_click()
        node.get_by_role("button", name="Generate").click()
        job_id = _new_job(driver, known)
        job = _finished(db, job_id)
        # The sample's own image (unique: the prompt is) and the delivery that completed it.
        src, sent_at = job.image_path or "", _callback_sent_at(kie, job.provider_task_id or "")
        seen_by_poller = _poll_until_seen(pollers, src) if pollers else {}
        watchers = pages[1:] or pages
        push += [_checked(_seen(page, src), sent_at) for page in watchers]
        # Read after two frames: a placeholder seen is timed in the next frame, and an image
        # that loaded within that frame (10 tabs, a copy already cached) read as unpainted.
        painted += [_checked(at, sent_at) for page in watchers if (at := page.evaluate(AFTER_NEXT_FRAME, src))]
        polled += [_checked(seen, sent_at) for seen in seen_by_poller.values()]
        if len(pages) > 1:
            clicked = driver.evaluate("window.__clicks")[-1]["wall"]
            other_rows.append(_checked(pages[1].evaluate(f"window.__rows.real[{json.dumps(job_id)}]"), clicked))
    optimistic = [
        o - c["perf"]
        for o, c in zip(driver.evaluate("window.__rows.optimistic"), driver.evaluate("window.__clicks"), strict=False)
    ]
    for page in pages + pollers:
        page.close()
    return {"push": push, "painted": painted, "polled": polled, "optimistic": optimistic, "other_rows": other_rows}


def _job_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=queue-row][data-job-id]", "rows => rows.map(r => r.dataset.jobId)")


def _new_job(page: Page, known: set[str]) -> str:
    """The job the click made: the one row that was not there before it."""
    deadline = time.time() + 15
    while time.time() < deadline:
        new = [job_id for job_id in _job_ids(page) if job_id not in known]
        if len(new) == 1:
            return new[0]
        if len(new) > 1:
            raise SampleError(f"one click made {len(new)} jobs")
        time.sleep(0.02)
    raise SampleError("the click made no job row")


def _finished(db: Database, job_id: str) -> Job:
    deadline = time.time() + 30
    while time.time() < deadline:
        with db.session() as session:
            job = session.get(Job, job_id)
            if job is not None and job.status == JobStatus.COMPLETED and job.image_path:
                return job
            if job is not None and job.status.is_terminal:
                raise SampleError(f"job {job_id} ended {job.status.value}: {job.error}")
        time.sleep(0.02)
    raise SampleError(f"job {job_id} did not complete")


def _callback_sent_at(kie: FakeProviderServer, task_id: str) -> float:
    """When (ms) the fake sent the delivery of this task that the app accepted (the first 200)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        done = [c for c in kie.state("tasks")["callbacks"] if c["taskId"] == task_id and c.get("status") == 200]
        if done:
            return float(min(c["sent_at"] for c in done)) * 1000
        time.sleep(0.05)
    raise SampleError(f"the fake KIE.ai has no accepted callback for task {task_id}")


def _seen(page: Page, src: str) -> float:
    """When (ms) the page showed the image `src`; waits for it, or stops the run."""
    deadline = time.time() + 10
    while time.time() < deadline:
        seen = page.evaluate(f"window.__seen[{json.dumps(src)}]")
        if seen:
            return float(seen)
        time.sleep(0.02)
    raise SampleError(f"a tab never showed {src}")


def _checked(seen: float | None, cause_ms: float) -> float:
    if seen is None:
        raise SampleError("a tab never showed the new row")
    if seen < cause_ms:
        raise SampleError(f"a row was seen {cause_ms - seen:.0f} ms before its click")
    return seen - cause_ms


def _poll_until_seen(pollers: list[Page], src: str | None, period_s: float = 2.0) -> dict[int, float]:
    """Tabs that refresh every 2 s instead of being pushed to: when each first shows the image."""
    seen: dict[int, float] = {}
    started = time.time()
    phase = {i: started + i * period_s / len(pollers) for i in range(len(pollers))}
    while len(seen) < len(pollers) and time.time() - started < 20:
        for i, page in enumerate(pollers):
            if i in seen or time.time() < phase[i]:
                continue
            page.reload()
            page.wait_for_url("**/p/*")
            try:
                expect(page.get_by_alt_text("Result of node", exact=False)).to_have_attribute(
                    "src", src or "", timeout=1500
                )
                seen[i] = time.time() * 1000
            except AssertionError:
                phase[i] += period_s
    return seen


def small_result() -> bytes:
    """A 10 KB result (the local provider's drawing): issue 23's figures, where the image costs little."""
    return render_text_to_image("a small drawing", "1:1")


@contextmanager
def image_server(workdir: Path, image: bytes) -> Iterator[str]:
    """Serves one result (`photo()`: 1024 px, ~2.4 MB) on loopback from its own process, like a provider's CDN."""
    folder = workdir / f"cdn-{len(image)}"
    folder.mkdir(exist_ok=True)
    (folder / "result.png").write_bytes(image)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/result.png").raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/result.png"
    finally:
        server.terminate()
        server.wait()


def ingestion(
    seeder: Seeder,
    kie: FakeProviderServer,
    workdir: Path,
    results: Results,
    label: str,
    target: int,
    image: bytes,
    jobs: int = INGESTION_JOBS,
    duplicates: int = 100,
    app_pgid: int | None = None,
) -> None:
    """Completions per second the webhook route sustains, then a count of lost or doubled updates.

    `image`: every job's result. With `app_pgid`, also the app's CPU per completion: steadier
    than the rate on a busy machine.

    Each callback is confirmed with the fake KIE.ai's recordInfo, as a real one is; a lost
    or doubled job stops the run, since the rate would then measure refusals.
    """
    project = seeder.project(f"ingestion {label}", finished_jobs=0, pending_jobs=jobs)
    ids = project.pending
    book = seeder.book

    with image_server(workdir, image) as image_url:
        kie.add_finished([task_id for _, _, task_id in ids], image_url)

        async def fire() -> float:
            deliveries = ids + ids[:duplicates]
            limit = asyncio.Semaphore(INGESTION_CONCURRENCY)
            async with httpx.AsyncClient(timeout=60) as http:

                async def send(job: tuple[str, str, str]) -> None:
                    async with limit:
                        response = await seeder.complete(http, job, image_url)
                    if response.status_code != 409:  # 409: a duplicate sent in the same second is a replay
                        response.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(send(d) for d in deliveries))
                return time.perf_counter() - started

        cpu_before, machine_before = group_cpu_s(app_pgid) if app_pgid else 0.0, machine_busy_s()
        elapsed = asyncio.run(fire())
        cpu_ms = (group_cpu_s(app_pgid) - cpu_before) * 1000 / jobs if app_pgid else None
        machine_ms = (machine_busy_s() - machine_before) * 1000 / jobs
    finished = [book.get(job_id) for job_id, _, _ in ids]
    completed = sum(j.status == JobStatus.COMPLETED for j in finished)
    doubled = sum(j.version != 3 for j in finished)
    rate = jobs / elapsed
    if completed != jobs or doubled:
        raise SampleError(f"ingestion, {label}: {jobs - completed} of {jobs} jobs lost, {doubled} doubled")
    results.add(
        f"ingestion, {label}",
        f"{rate:.0f} completions/s",
        f">= {target}/s",
        rate >= target,
        f"{jobs} jobs + {duplicates} duplicate callbacks; lost {jobs - completed}, doubled {doubled}"
        + (f"; app CPU {cpu_ms:.1f} ms per completion" if cpu_ms is not None else "")
        + f"; the machine's CPU {machine_ms:.1f} ms per completion (the target leaves {budget_ms(target):.1f})",
    )


def fan_out_memory(browser: Browser, app: AppServer, results: Results, tabs: int = 100) -> None:
    assert app.process is not None
    pgid = os.getpgid(app.process.pid)
    first, url = new_project(browser, app)
    time.sleep(2)
    one = rss_bytes(pgid)
    pages = [first]
    for _ in range(tabs - 1):
        page = browser.new_page()
        open_canvas(page, url)
        pages.append(page)
    time.sleep(3)
    many = rss_bytes(pgid)
    per_tab = (many - one) / (tabs - 1)
    results.add(
        "backend RSS per connected tab",
        f"{per_tab / 1024:.0f} KiB",
        "<= 1 MiB",
        per_tab <= 1024 * 1024,
        f"1 tab {one / 2**20:.0f} MiB, {tabs} tabs {many / 2**20:.0f} MiB",
    )
    for page in pages:
        page.close()


def confirmation_cost(
    browser: Browser, app: AppServer, kie: FakeProviderServer, results: Results, db: Database
) -> None:
    """Webhook -> visible in 10 tabs with and without the tabs' delivery reports, alternating, so drift cancels."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(3):
        for confirmations, sample in ((True, on), (False, off)):
            sample += webhook_to_visible(browser, app, kie, 10, 4, results, db, confirmations=confirmations)["push"]
    change = pct(on, 50) / max(pct(off, 50), 0.1) - 1
    results.add(
        "delivery confirmations' cost, 10 tabs (p50)",
        f"{pct(on, 50):.0f} ms with vs {pct(off, 50):.0f} ms without",
        "< 10% slower",
        change < 0.10,
        f"{change:+.0%}; p95 {pct(on, 95):.0f} vs {pct(off, 95):.0f} ms; {len(on)} + {len(off)} samples",
    )


#: A result as heavy as a real generator's: below this, a sample does not measure what images cost.
REAL_WEIGHT_BYTES = 1_500_000
COLD_LOAD_NODES = 12


def cold_load(browser: Browser, app: AppServer, results: Results, db: Database) -> None:
    """A fresh tab opening a project of 12 nodes with real-weight results: what it transfers."""
    driver, url = new_project(browser, app)
    for i in range(COLD_LOAD_NODES):
        node = model_node(driver, f"cold load {i} {time.time()}", MODEL)
        known = set(_job_ids(driver))
        node.get_by_role("button", name="Generate").click()
        job = _finished(db, _new_job(driver, known))
        weight = (app.data_dir / "media" / (job.image_path or "").removeprefix("/media/")).stat().st_size
        if weight < REAL_WEIGHT_BYTES:
            raise SampleError(f"a result of {weight} bytes is not real-weight (FAKE_PHOTO_WEIGHT)")
    driver.close()
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    received: dict[str, int] = {}
    cdp.on("Network.responseReceived", lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: received.__setitem__(e["requestId"], e["encodedDataLength"]))
    open_canvas(page, url)
    expect(page.get_by_alt_text("Result of node", exact=False)).to_have_count(COLD_LOAD_NODES, timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[alt^=\"Result\"]')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_load_state("networkidle")
    media = [rid for rid, address in urls.items() if "/media/" in address and rid in received]
    if len(media) < COLD_LOAD_NODES:
        raise SampleError(f"{len(media)} image requests for {COLD_LOAD_NODES} results")
    total = sum(received.values())
    images = sum(received[rid] for rid in media)
    context.close()
    results.add(
        f"cold load of a {COLD_LOAD_NODES}-node project, bytes transferred",
        f"{total / 1e6:.2f} MB ({images / 1e6:.2f} MB images)",
        "<= 2 MB",
        total <= 2_000_000,
        f"{len(media)} image requests; 2.4 MB PNG results; before the copies: 31.9 MB (31.5 MB images)",
    )


#: Completions per sample set in `--only images`.
RUNS_PER_TIER = 10


def images_suite(app: AppServer, kie: FakeProviderServer, results: Results) -> None:
    """`--only images`: the cold load, and signed callback -> image loaded in 1 and 10 tabs."""
    store = seeder_of(app, MODEL, KIE_KEY, KIE_HMAC)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print("cold load of a project ...", flush=True)
        cold_load(browser, app, results, store.db)
        medians = {}
        assert app.process is not None
        app_pgid = os.getpgid(app.process.pid)
        for tabs in (1, 10):
            print(f"signed callback -> image loaded, {tabs} tabs ...", flush=True)
            meter = ClickCpu(app_pgid)
            sample = webhook_to_visible(browser, app, kie, tabs, RUNS_PER_TIER, results, store.db, at_click=meter)
            if tabs == 1:
                results.add(
                    "app CPU per generated image, 2.4 MB results",
                    f"{meter.per_image_ms():.0f} ms",
                    "",
                    None,
                    "the app's process group from one Generate click to the next, 1 tab: the prompt's save, the"
                    " job, the callback, the download, the copies, the push, the tab's image request and"
                    " confirmations; before: 120 ms (issue 24, with the page load)",
                )
            push, painted = sample["push"], sample["painted"]
            medians[tabs] = pct(push, 50)
            if len(painted) < len(push):
                raise SampleError(f"{len(push) - len(painted)} images loaded without a placeholder painted first")
            results.add(
                f"signed callback -> placeholder painted, {tabs} tabs",
                f"p50 {pct(painted, 50):.0f} / p95 {pct(painted, 95):.0f} ms",
                "",
                None,
                f"{len(painted)} samples; the frame after the change rendered the row; before the image loaded",
            )
            results.add(
                f"signed callback -> image loaded, {tabs} tabs",
                f"p50 {pct(push, 50):.0f} / p95 {pct(push, 95):.0f} ms",
                "10 tabs: p50 <= 2x 1 tab's, <= 250 ms" if tabs == 10 else "",
                medians[10] <= min(2 * medians[1], 250) if tabs == 10 else None,
                f"{len(push)} samples; 2.4 MB results"
                + (f"; {medians[10] / max(medians[1], 0.1):.1f}x the 1-tab p50" if tabs == 10 else ""),
            )
        # Issue 23's figure: the same chain with a 10 KB result, where the image's copies cost little.
        print("app CPU per generated image, 10 KB results ...", flush=True)
        kie.configure(delay_s=0.3, record_lag_s=0.0, photo_weight=False)
        meter = ClickCpu(app_pgid)
        webhook_to_visible(browser, app, kie, 1, 2 * RUNS_PER_TIER, results, store.db, at_click=meter)
        kie.configure(delay_s=0.3, record_lag_s=0.0)
        per_image = meter.per_image_ms()
        results.add(
            "app CPU per generated image, 10 KB results",
            f"{per_image:.0f} ms",
            "<= 30 ms",
            per_image <= 30,
            f"as above, {len(meter.readings) - 1} clicks; a ~10 KB drawing as the result; before: 86 ms (issue 23)",
        )
        browser.close()
    store.close()


class ClickCpu:
    """The app's CPU, read just before each Generate click (`webhook_to_visible`'s `at_click`)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.readings: list[float] = []

    def __call__(self) -> None:
        self.readings.append(group_cpu_s(self.pgid))

    def per_image_ms(self) -> float:
        """Milliseconds of app CPU from one click to the next (each click waited for its image in
        every tab): the whole work of one generated image, without the page's load."""
        if len(self.readings) < 3:
            raise SampleError(f"{len(self.readings)} CPU readings at the clicks: too few to measure an image")
        spent = [later - earlier for earlier, later in itertools.pairwise(self.readings)]
        if any(step <= 0 for step in spent):
            raise SampleError(f"the app used no CPU between two clicks ({spent}): not its process group")
        return (self.readings[-1] - self.readings[0]) * 1000 / len(spent)


def browser_suite(app: AppServer, kie: FakeProviderServer, results: Results) -> None:
    """Measured in Chromium: webhook to image, click to row, polling, memory."""
    store = seeder_of(app, MODEL, KIE_KEY, KIE_HMAC)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print("delivery confirmations' cost ...", flush=True)
        confirmation_cost(browser, app, kie, results, store.db)
        for tabs, runs in ((1, 10), (10, 10)):
            print(f"webhook -> image visible, {tabs} tabs ...", flush=True)
            polling = 3 if tabs == 10 else 0
            sample = webhook_to_visible(browser, app, kie, tabs, runs, results, store.db, polling_tabs=polling)
            push = sample["push"]
            met = None
            if tabs == 10:
                met = pct(push, 50) <= 25 and pct(push, 99) <= 80
            results.add(
                f"webhook -> image visible, {tabs} tabs",
                f"p50 {pct(push, 50):.0f} / p95 {pct(push, 95):.0f} / p99 {pct(push, 99):.0f} ms",
                "p50 <= 25, p99 <= 80 ms (10 tabs)" if tabs == 10 else "",
                met,
                f"{len(push)} samples",
            )
            if tabs == 10:
                opt = sample["optimistic"]
                results.add(
                    "click -> row visible, same tab (optimistic)",
                    f"p50 {pct(opt, 50):.1f} / p95 {pct(opt, 95):.1f} ms",
                    "p95 <= 20 ms",
                    pct(opt, 95) <= 20,
                    f"{len(opt)} samples",
                )
                other = sample["other_rows"]
                results.add(
                    "click -> row visible, other tab",
                    f"p50 {pct(other, 50):.0f} / p95 {pct(other, 95):.0f} ms",
                    "p95 <= 50 ms",
                    pct(other, 95) <= 50,
                    f"{len(other)} samples",
                )
                polled = sample["polled"]
                if polled:
                    ratio = statistics.median(polled) / max(statistics.median(push), 0.1)
                    results.add(
                        "push vs polling every 2 s (median)",
                        f"{statistics.median(push):.0f} ms vs {statistics.median(polled):.0f} ms",
                        "",
                        None,
                        f"polling is {ratio:.0f}x slower; {len(push)} and {len(polled)} samples",
                    )
        print("fan-out memory ...", flush=True)
        fan_out_memory(browser, app, results)
        browser.close()
    store.close()


def socket_suite(app: AppServer, kie: FakeProviderServer, workdir: Path, results: Results) -> None:
    """Tabs as socket clients: latency to the last of N, server CPU and bytes per change."""
    driver = seeder_of(app, MODEL, KIE_KEY, KIE_HMAC)
    assert app.process is not None
    pid = app.process.pid

    async def measure(image_url: str) -> None:
        cpu_at: dict[int, float] = {}
        for clients, completions in ((1, 20), (10, 20), (100, 20), (1000, 10)):
            print(f"socket tier, {clients} clients ...", flush=True)
            run = await fan_out(driver, kie, pid, clients, completions, image_url)
            latency = run["latency_ms"]
            cpu_at[clients] = run["cpu_ms_per_change"]
            target, met = "", None
            if clients == 100:
                target, met = "p50 <= 5, p99 <= 20 ms", pct(latency, 50) <= 5 and pct(latency, 99) <= 20
            elif clients == 1000:
                target, met = "p99 <= 100 ms", pct(latency, 99) <= 100
            results.add(
                f"webhook received -> last of {clients} socket clients",
                f"p50 {pct(latency, 50):.1f} / p95 {pct(latency, 95):.1f} / p99 {pct(latency, 99):.1f} ms",
                target,
                met,
                f"{len(latency)} samples; server CPU {run['cpu_ms_per_change']:.2f} ms per change",
            )
            push = run["push_ms"]
            results.add(
                f"completion committed -> last of {clients} socket clients",
                f"p50 {pct(push, 50):.1f} / p95 {pct(push, 95):.1f} / p99 {pct(push, 99):.1f} ms",
                "",
                None,
                f"{len(push)} samples; the push alone, without download and storage",
            )
        ratio = cpu_at[100] / max(cpu_at[1], 1e-6)
        results.add(
            "server CPU per change, 100 vs 1 clients",
            f"{cpu_at[100]:.2f} vs {cpu_at[1]:.2f} ms ({ratio:.1f}x)",
            "<= 2x",
            ratio <= 2,
            "whole app process group, over the completions above",
        )
        for jobs in (10, 1000):
            print(f"bytes per change, {jobs} jobs in the project ...", flush=True)
            run = await fan_out(driver, kie, pid, 10, 10, image_url, jobs_in_project=jobs)
            sizes = run["bytes_per_change"]
            results.add(
                f"bytes per client per change, {jobs} jobs in the project",
                f"mean {statistics.mean(sizes):.0f} / max {max(sizes)} B",
                "<= 1 KiB",
                max(sizes) <= 1024,
                f"{len(sizes)} change messages for 10 completions",
            )

    with image_server(workdir, photo()) as image_url:
        asyncio.run(measure(image_url))
    # Issue 23's own figure: the completion path alone, with a 10 KB result (the local drawing).
    with image_server(workdir, small_result()) as small_url:
        print("app CPU per completion, 10 KB results ...", flush=True)
        asyncio.run(fan_out(driver, kie, pid, 1, 10, small_url))  # warm: the first completions load code
        run = asyncio.run(fan_out(driver, kie, pid, 1, SMALL_COMPLETIONS, small_url))
        results.add(
            "app CPU per completion, 10 KB results, 1 socket client",
            f"{run['cpu_ms_per_completion']:.1f} ms",
            "<= 8 ms",
            run["cpu_ms_per_completion"] <= 8,
            f"{SMALL_COMPLETIONS} signed KIE.ai callbacks, one at a time; the app's process group, "
            "its push to the tab included; issue 23 measured ~28 ms",
        )
    driver.close()


def load_suite(workdir: Path, results: Results) -> None:
    """Locust's simulated users clicking Generate on several projects of the scaled setup (local provider)."""
    env = {"LOCAL_PROVIDER_DELAY_S": "0.5", "LOG_LEVEL": "WARNING"}
    with scaled_cluster(workdir / "load", PG_WORKERS, BENCH_REDIS_DB, env) as cluster:
        seeder = Seeder(cluster.url, Path(cluster.env["DATA_DIR"]), cluster.env["DATABASE_URL"], "local/sketch")
        projects = [seeder.project(f"load {i}", finished_jobs=0, pending_jobs=0) for i in range(LOAD_PROJECTS)]
        samples = workdir / "load.json"
        print(f"load tier, {LOAD_USERS} users for {LOAD_SECONDS} s ...", flush=True)
        began = time.time()
        locust = [sys.executable, "-m", "locust", "-f", str(HERE / "load.py"), "--headless", "--only-summary"]
        bounds = ["-u", str(LOAD_USERS), "-r", str(LOAD_SPAWN_PER_S), "-t", f"{LOAD_SECONDS}s", "--stop-timeout", "15"]
        output = ["--host", cluster.url, "--csv", str(workdir / "load"), "--exit-code-on-error", "0"]
        subprocess.run(
            [*locust, *bounds, *output],
            env={
                **os.environ,
                "LOAD_PROJECTS": ",".join(f"{p.id}:{p.node_id}" for p in projects),
                "LOAD_SAMPLES": str(samples),
            },
            stdout=(workdir / "locust.log").open("ab"),
            stderr=subprocess.STDOUT,
            timeout=LOAD_SECONDS + 180,
            check=True,
        )
        clicked = json.loads(samples.read_text())
        ids = [p.id for p in projects]

        def jobs() -> list[Job]:
            with seeder.db.session() as session:
                return list(session.exec(select(Job).where(col(Job.project_id).in_(ids))))

        deadline = time.monotonic() + 120
        rows = jobs()
        while any(not job.status.is_terminal for job in rows) and time.monotonic() < deadline:
            time.sleep(0.5)
            rows = jobs()
        completed = [job for job in rows if job.status == JobStatus.COMPLETED]
        span = max(job.finished_at.timestamp() for job in completed if job.finished_at) - began if completed else 1
        with (workdir / "load_stats.csv").open() as handle:
            stats = {row["Name"]: row for row in csv.DictReader(handle)}
        clicks = stats["click -> row"]
        received: dict[str, float] = {}
        visible = []
        for job_id, seen_at in clicked["seen"]:
            if job_id not in received:
                received[job_id] = seeder.step_at(job_id, "webhook.received")
            if seen_at < received[job_id]:
                raise SampleError(f"job {job_id} was seen completed before its webhook came")
            visible.append((seen_at - received[job_id]) * 1000)
        failures = int(stats["Aggregated"]["Failure Count"])
        missing = len(set(clicked["clicked"]) - {job.client_request_id for job in rows})
        unfinished = len(rows) - len(completed)
        errors = failures + missing + unfinished
        results.add(
            f"load: {LOAD_USERS} users on {LOAD_PROJECTS} projects, {PG_WORKERS} workers behind HAProxy",
            f"{len(completed) / span:.1f} jobs/s completed",
            "",
            None,
            f"{len(completed)} jobs in {span:.0f} s (locust, {LOAD_SECONDS} s of clicking, local provider 0.5 s)",
        )
        results.add(
            "load: click -> row on the clicking tab",
            f"p50 {float(clicks['50%']):.0f} / p95 {float(clicks['95%']):.0f} ms",
            "",
            None,
            f"{clicks['Request Count']} clicks",
        )
        results.add(
            "load: webhook received -> visible on each tab of the project",
            f"p50 {pct(visible, 50):.0f} / p95 {pct(visible, 95):.0f} ms",
            "",
            None,
            f"{len(visible)} samples",
        )
        results.add(
            "load: errors",
            str(errors),
            "0",
            errors == 0,
            f"{failures} locust failures, {missing} clicks without a job, {unfinished} jobs not completed",
        )
        seeder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only",
        choices=["browser", "sockets", "ingestion", "confirmations", "load", "derivatives", "images", "progress"],
        help="run one part of the suite",
    )
    only = parser.parse_args().only
    results = Results()
    load_at_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="canvas-bench-"))
    # Results as heavy as a real generator's (~2.4 MB PNG): 10 KB drawings hid what images cost.
    os.environ[PHOTO_WEIGHT_ENV] = "1"
    if only in (None, "derivatives", "images"):
        print("derivatives' CPU ...", flush=True)
        for row in derivative_rows():
            results.add(row["metric"], row["value"], row["target"], row["verdict"], row["note"])
        if only == "derivatives":
            return report(results, load_at_start)
    if only in (None, "progress"):
        progress_suite(workdir, results, pct)
        if only == "progress":
            return report(results, load_at_start)
    kie = FakeProviderServer("kie_server", workdir / "kie.log", KIE_KEY, ("--hmac-key", KIE_HMAC))
    kie.start()
    # No recordInfo lag: a callback is confirmed with recordInfo, and the bench measures the push, not that lag.
    kie.configure(delay_s=0.3, record_lag_s=0.0)
    app = AppServer(
        data_dir=workdir / "app",
        env={
            "KIE_API_KEY": KIE_KEY,
            "KIE_BASE_URL": kie.url,
            "KIE_WEBHOOK_HMAC_KEY": KIE_HMAC,
            "IMAGE_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "POLL_START_S": "60",
            "POLL_CAP_S": "60",  # a worker whose POLL_CAP_S < POLL_START_S is not ready (HAProxy skips it)
            "LOG_LEVEL": "WARNING",
        },
    )
    print("starting the production app ...", flush=True)
    app.start()
    try:
        if only in (None, "sockets"):
            socket_suite(app, kie, workdir, results)
        if only in (None, "browser"):
            browser_suite(app, kie, results)
        if only in (None, "images"):
            images_suite(app, kie, results)
        if only == "confirmations":
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                confirmation_cost(browser, app, kie, results, seeder_of(app, MODEL, KIE_KEY, KIE_HMAC).db)
                browser.close()
        if only in (None, "ingestion"):
            print("ingestion throughput ...", flush=True)
            sqlite = seeder_of(app, MODEL, KIE_KEY, KIE_HMAC)
            assert app.process is not None
            app_pgid = os.getpgid(app.process.pid)
            # Issue 24's real-weight results, then issue 23's own figure: the completion path with
            # a 10 KB result, where the image's copies cost little.
            with image_server(workdir, small_result()) as image_url:
                floor = floor_measure(kie, KIE_KEY, KIE_HMAC, image_url, workdir, INGESTION_JOBS, INGESTION_CONCURRENCY)
                metric, value, note = floor_row(floor)
            results.add(metric, value, note=note)
            ingestion(sqlite, kie, workdir, results, "SQLite, 1 worker", 500, photo(), app_pgid=app_pgid)
            label = "SQLite, 1 worker, 10 KB results"
            ingestion(sqlite, kie, workdir, results, label, 200, small_result(), app_pgid=app_pgid)
            sqlite.close()
            with scaled_cluster(workdir / "cluster", PG_WORKERS, BENCH_REDIS_DB, app.env) as cluster:
                data_dir, database_url = Path(cluster.env["DATA_DIR"]), cluster.env["DATABASE_URL"]
                pg = Seeder(cluster.url, data_dir, database_url, MODEL, KIE_KEY, KIE_HMAC)
                ingestion(pg, kie, workdir, results, f"PostgreSQL, {PG_WORKERS} workers", 1500, photo())
                label = f"PostgreSQL, {PG_WORKERS} workers, 10 KB results"
                ingestion(pg, kie, workdir, results, label, 300, small_result())
                pg.close()
        if only in (None, "load"):
            load_suite(workdir, results)
    finally:
        app.stop()
        kie.stop()
    report(results, load_at_start)


def report(results: Results, load_at_start: float) -> None:
    """The table, printed and written to bench/results.json with the machine and its load."""
    load = f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    python = f"Python {platform.python_version()}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {python}, {platform.platform()}; {load}"
    (HERE / "results.json").write_text(
        json.dumps({"machine": machine, "at": time.strftime("%Y-%m-%d %H:%M"), "results": results.rows}, indent=2)
    )
    print(f"\nMachine: {machine}\n")
    print(table(results.rows))


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["metric", "value", "target", "verdict", "note"]
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join(
        [
            line(headers),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line([r[h] for h in headers]) for r in rows),
        ]
    )


if __name__ == "__main__":
    main()
