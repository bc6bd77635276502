"""Plain, immutable views of rows: what a tab holds and renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.tables import Job, Node, Project


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="milliseconds") if moment else ""


#: How much of a job's prompt its queue row shows: enough to tell jobs apart, a row stays small.
PROMPT_WORDS = 8
PROMPT_WORDS_CHARS = 80


def first_words(prompt: str) -> str:
    """The prompt's first `PROMPT_WORDS` words, at most `PROMPT_WORDS_CHARS` characters (… when cut)."""
    words = prompt.split()
    text = " ".join(words[:PROMPT_WORDS])
    cut = len(words) > PROMPT_WORDS or len(text) > PROMPT_WORDS_CHARS
    return text[:PROMPT_WORDS_CHARS].rstrip() + ("…" if cut else "")


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
class ImageInfo:
    """A stored image's displayed size (after its EXIF turn) and ThumbHash (base64, ~25 bytes)."""

    width: int
    height: int
    thumbhash: str


@dataclass(frozen=True)
class HistoryEntry:
    """One of a node's results in its history strip: where it is, and its ThumbHash, so the strip
    paints each placeholder before fetching a byte ("" while its derivatives are missing)."""

    url: str
    thumbhash: str = ""


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
    history: list[HistoryEntry] = field(default_factory=list)
    #: Why it is not up to date ("Stale: ...", "Waiting for #<id>"); "" when it is.
    freshness: str = ""
    position: int = 0
    #: The result's displayed size and ThumbHash: every tab paints a placeholder of its shape
    #: in the frame the row arrives, before fetching a byte (0 and "" when unknown).
    image_width: int = 0
    image_height: int = 0
    image_hash: str = ""
    #: `Images` per Generate (1-4) and the `Seed` as typed ("": random).
    batch_size: int = 1
    seed: str = ""
    #: Its newest result when that is not the current one (a batch's others), with its ThumbHash:
    #: a tab adds it to the history it holds ("" when the newest is `image_url`, said once).
    latest_result: str = ""
    latest_result_hash: str = ""

    @classmethod
    def of(
        cls, row: Node, history: list[HistoryEntry], image: ImageInfo | None = None, latest: ImageInfo | None = None
    ) -> NodeView:
        assert row.id is not None
        other_latest = row.latest_result if row.latest_result and row.latest_result != row.image_path else ""
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
            image_width=image.width if image else 0,
            image_height=image.height if image else 0,
            image_hash=image.thumbhash if image else "",
            batch_size=row.batch_size,
            seed=row.seed,
            latest_result=other_latest,
            latest_result_hash=latest.thumbhash if latest and other_latest else "",
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
    #: Its result, for the queue row's thumbnail ("" until it has one), with its ThumbHash: the
    #: thumbnail's placeholder paints in the frame the row arrives (as a node card's does).
    image_url: str = ""
    image_hash: str = ""
    #: A queued job waiting for its next submit try: for whom ("waiting for KIE.ai") and until
    #: when (ISO, UTC); the browser counts down to it ("next try in 12 s"). Empty otherwise.
    waiting_reason: str = ""
    retry_at: str = ""
    #: The first words of the prompt it ran (`first_words`), for its queue row.
    prompt_words: str = ""
    #: The seed it drew with, as text ("" when its model takes none).
    seed: str = ""

    @classmethod
    def of(cls, row: Job, image: ImageInfo | None = None) -> JobView:
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
            image_hash=image.thumbhash if image else "",
            waiting_reason=row.waiting_reason,
            retry_at=_iso(row.retry_at),
            prompt_words=first_words(row.prompt),
            seed="" if row.seed is None else str(row.seed),
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
    #: The project has jobs older than `jobs` (the newest `QUEUE_LIMIT`): `Older jobs` loads them.
    more_jobs: bool = False


@dataclass(frozen=True)
class JobPage:
    """Jobs older than a tab holds, newest first, and whether there are older ones still."""

    jobs: list[JobView]
    more: bool


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
