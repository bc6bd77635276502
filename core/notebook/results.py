"""A result, opened large: what made it (prompt, model, ratio, provider, seed, time) and the
node's other results to step through. Reads only; the lightbox asks per tab."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from core.changes import ChangeWriter
from core.errors import NotFound
from core.notebook.canvas import HISTORY_LIMIT
from models.tables import Job, NodeResult


@dataclass(frozen=True)
class ResultDetails:
    prompt: str
    model: str
    aspect_ratio: str
    provider: str
    #: "" when its model takes no seed.
    seed: str
    #: When it was made (ISO, UTC).
    made_at: str


class Results:
    def __init__(self, writer: ChangeWriter) -> None:
        self.writer = writer

    def of_node(self, node_id: int) -> list[str]:
        """The node's results, newest first (its history, as its card shows it)."""
        with self.writer.reading() as s:
            rows = s.exec(
                select(NodeResult.image_path)
                .where(NodeResult.node_id == node_id)
                .order_by(col(NodeResult.id).desc())
                .limit(HISTORY_LIMIT)
            )
            return list(dict.fromkeys(rows))

    def details(self, project_id: int, image_url: str) -> ResultDetails:
        """What made an image of the project: the newest job of the project that produced it."""
        with self.writer.reading() as s:
            job = s.exec(
                select(Job)
                .where(Job.project_id == project_id, Job.image_path == image_url)
                .order_by(col(Job.created_at).desc())
            ).first()
            if job is None:
                raise NotFound("No job of this project made that image")
            made = job.finished_at or job.created_at
            return ResultDetails(
                prompt=job.prompt,
                model=job.model,
                aspect_ratio=job.aspect_ratio,
                provider=job.provider,
                seed="" if job.seed is None else str(job.seed),
                made_at=made.isoformat(timespec="seconds"),
            )
