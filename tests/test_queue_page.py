"""The queue past its first page: the snapshot says older jobs exist, `older_jobs` pages through them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import NotFound
from core.root import Core
from models.tables import Job, utcnow
from models.views import first_words


def _jobs(core: Core, project_id: int, count: int) -> list[str]:
    """`count` jobs, newest first; two of them made in the same instant (ties go by id)."""
    start = utcnow()
    with core.db.session() as session:
        rows = [
            Job(
                project_id=project_id,
                provider="local",
                model="local/sketch",
                prompt=f"job {i}",
                aspect_ratio="1:1",
                created_at=start + timedelta(seconds=min(i, count - 2)),
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.commit()
        made = sorted(rows, key=lambda j: (-j.created_at.timestamp(), j.id))
        return [j.id for j in made]


def test_older_jobs_page_after_the_oldest_held_and_say_when_more_exist(
    core: Core, project_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.canvas, "queue_rows", 2)
    newest_first = _jobs(core, project_id, 5)

    snapshot = core.canvas.snapshot(project_id)
    assert [j.id for j in snapshot.jobs] == newest_first[:2] and snapshot.more_jobs
    page = core.canvas.older_jobs(project_id, newest_first[1])
    assert [j.id for j in page.jobs] == newest_first[2:4] and page.more
    last = core.canvas.older_jobs(project_id, newest_first[3])
    assert [j.id for j in last.jobs] == newest_first[4:] and not last.more

    other = core.canvas.create_project(core.accounts.local_user().id, "other")
    with pytest.raises(NotFound):
        core.canvas.older_jobs(other.id, newest_first[1])  # a job of another project names no page


def test_a_row_carries_the_prompts_first_words() -> None:
    assert first_words("a  red kite\nover the sea") == "a red kite over the sea"
    assert first_words("one two three four five six seven eight nine") == "one two three four five six seven eight…"
    assert first_words("x" * 100) == "x" * 80 + "…"
