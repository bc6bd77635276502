"""Plain, immutable views of rows: what a tab holds and renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.tables import Job, Node, Project


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="milliseconds") if moment else ""


@dataclass(frozen=True)
class ProjectView:
    id: int
    name: str
    owner_id: int = 0
    autorun: bool = False

    @classmethod
    def of(cls, row: Project) -> ProjectView:
        assert row.id is not None
        return cls(id=row.id, name=row.name, owner_id=row.owner_id, autorun=row.autorun)


@dataclass(frozen=True)
class NodeView:
    id: int
    kind: str
    prompt: str
    model: str
    aspect_ratio: str
    version: int
    image_url: str = ""
    error: str = ""
    input_images: list[str] = field(default_factory=list)
    #: Nodes whose current result this one uses (`uses #<id>` on the card).
    input_nodes: list[int] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    #: Why it is not up to date ("Stale: ...", "Waiting for #<id>"); "" when it is.
    freshness: str = ""
    position: int = 0

    @classmethod
    def of(cls, row: Node, history: list[str]) -> NodeView:
        assert row.id is not None
        return cls(
            id=row.id,
            kind=row.kind.value,
            prompt=row.prompt,
            model=row.model,
            aspect_ratio=row.aspect_ratio,
            version=row.version,
            image_url=row.image_path or "",
            error=row.error or "",
            input_images=list(row.input_images),
            input_nodes=list(row.input_nodes),
            history=history,
            freshness=row.freshness,
            position=row.position,
        )


@dataclass(frozen=True)
class JobView:
    id: str
    node_id: int
    provider: str
    model: str
    status: str
    version: int
    created_at: str
    finished_at: str = ""
    elapsed: str = ""
    error: str = ""
    client_request_id: str = ""
    progress: str = ""
    steps: int = 0
    #: The failed or cancelled job this one retries.
    retry_of: str = ""
    #: Its result, for the queue row's thumbnail ("" until it has one).
    image_url: str = ""

    @classmethod
    def of(cls, row: Job) -> JobView:
        elapsed = ""
        if row.finished_at:
            elapsed = f"{(row.finished_at - row.created_at).total_seconds():.1f} s"
        return cls(
            id=row.id,
            node_id=row.node_id or 0,
            provider=row.provider,
            model=row.model,
            status=row.status.value,
            version=row.version,
            created_at=_iso(row.created_at),
            finished_at=_iso(row.finished_at),
            elapsed=elapsed,
            error=row.error or "",
            client_request_id=row.client_request_id or "",
            progress=row.progress,
            steps=row.steps,
            retry_of=row.retry_of or "",
            image_url=row.image_path or "",
        )


@dataclass(frozen=True)
class StepView:
    """One timeline line: when (ms after the first step), how long since the previous one."""

    step: str
    detail: str
    at: str
    offset_ms: int
    delta_ms: int


@dataclass(frozen=True)
class TimelineView:
    job_id: str
    steps: list[StepView]
    #: Why the job looks stuck (empty when it does not).
    stalled: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Everything a tab shows for one project, as of `seq`."""

    project: ProjectView
    seq: int
    nodes: list[NodeView]
    jobs: list[JobView]


@dataclass(frozen=True)
class Changes:
    """Rows changed after a tab's sequence number, newest state of each (nodes without history)."""

    seq: int
    nodes: list[NodeView]
    jobs: list[JobView]
    deleted_nodes: list[int]
    project: ProjectView | None
    #: Events after `after_seq` are missing (the feed has a hole): only a full resync is truthful.
    gap: bool = False
