"""A shared deployment (sign-in required) survives a crash with work in flight."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from e2e.conftest import KIE_HMAC_KEY
from e2e.helpers import job_rows, model_node, open_canvas
from e2e.server import AppServer, FakeProviderServer
from e2e.test_accounts import sign_up
from tests.wait import wait_until

JOBS = 20
pytestmark = pytest.mark.usefixtures("fresh_fakes")


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory, fake_kie: FakeProviderServer) -> Iterator[AppServer]:
    """Its own app: sign-in required, and no fallback poll for two minutes, so deliveries do the work."""
    env = {
        "AUTH_REQUIRED": "true",
        "KIE_API_KEY": fake_kie.api_key,
        "KIE_BASE_URL": fake_kie.url,
        "KIE_WEBHOOK_HMAC_KEY": KIE_HMAC_KEY,
        "IMAGE_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "POLL_START_S": "120",
        "POLL_CAP_S": "120",
    }
    server = AppServer(data_dir=Path(tmp_path_factory.mktemp("strict")), env=env, private_workdirs=True)
    server.start()
    yield server
    server.stop()


def counts(db: Path, sql: str) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return {str(key): int(n) for key, n in connection.execute(sql)}


def test_sign_in_is_required(browser: Browser, strict_server: AppServer) -> None:
    page = browser.new_context().new_page()
    page.goto(strict_server.url)
    page.wait_for_url(re.compile(r".*/login\?next=%2F$"))
    assert page.request.get(f"{strict_server.url}/media/{'0' * 64}.png").status == 404


def test_sigkill_with_jobs_in_flight_loses_nothing_and_doubles_nothing(
    browser: Browser, strict_server: AppServer, fake_kie: FakeProviderServer
) -> None:
    # KIE.ai documents only a few callback tries; this test is about our side applying a
    # delivery that arrives after a crash exactly once, so the fake keeps trying for ~3 minutes.
    # The fake holds every task until the app is dead, so none finishes (and is delivered) before
    # the crash: with a fixed 8 s task, the first did in a clean-clone run and the wait for a
    # refused callback of every task could never end (30 s tasks then cost the test 30 s).
    retries = [2.0] * 90
    fake_kie.configure(delay_s=1.0, delivery_pauses_s=retries, hold=True)
    prompt = f"crash test {uuid.uuid4().hex[:8]}"
    context = browser.new_context()
    page = context.new_page()
    sign_up(page, strict_server.url, f"ops-{uuid.uuid4().hex[:8]}@example.com")
    project_url = page.url
    generate = model_node(page, prompt, "google/nano-banana").get_by_role("button", name="Generate")
    for _ in range(JOBS):
        generate.click()
    expect(job_rows(page)).to_have_count(JOBS)

    def ours() -> list[dict]:
        return [r for r in fake_kie.state("tasks")["records"] if prompt in r["param"]]

    wait_until(lambda: len(ours()), lambda tasks: tasks == JOBS, what=f"{JOBS} tasks at the provider")
    strict_server.kill()
    fake_kie.configure(delay_s=1.0, delivery_pauses_s=retries)  # the tasks finish while the app is down
    task_ids = {r["taskId"] for r in ours()}

    def refused_deliveries() -> set[str]:
        return {c["taskId"] for c in fake_kie.state("tasks")["callbacks"] if "error" in c and c["taskId"] in task_ids}

    # Every task finishes while the app is down; the provider keeps retrying its callback. The
    # fake renders real-weight photos: on a loaded CI machine five took more than a minute.
    wait_until(
        refused_deliveries, lambda refused: refused == task_ids, what="a refused callback for every task", timeout_s=180
    )
    strict_server.start()

    db = strict_server.data_dir / "app.db"
    by_status = "SELECT lower(status), count(*) FROM job GROUP BY lower(status)"
    wait_until(lambda: counts(db, by_status), lambda by: by == {"completed": JOBS}, what="every job to finish")
    per_job = "SELECT job_id, count(*) FROM {table} {where} GROUP BY job_id"
    results = counts(db, per_job.format(table="noderesult", where=""))
    completions = counts(db, per_job.format(table="jobstep", where="WHERE step = 'status.completed'"))
    assert len(results) == JOBS and set(results.values()) == {1}  # one stored result per job, never two
    assert len(completions) == JOBS and set(completions.values()) == {1}  # each job completed exactly once

    # The session's fake may deliver other tests' late callbacks meanwhile: only this test's count.
    # Every retried delivery is taken (200). The restarted app may poll a job done before its
    # next retry comes (seen once in a clean-clone run): that delivery then meets a finished job
    # and is taken too, a retry pause (2 s) later.
    def delivered() -> set[str]:
        callbacks = fake_kie.state("tasks")["callbacks"]
        return {c["taskId"] for c in callbacks if c.get("status") == 200 and c["taskId"] in task_ids}

    wait_until(delivered, lambda taken: taken == task_ids, what="every task's delivery taken", timeout_s=30)

    # The signed-in session survived the crash too: the page shows every result.
    open_canvas(page, project_url)
    expect(page.locator("[data-testid=queue-row][data-status=completed]")).to_have_count(JOBS)
    context.close()
