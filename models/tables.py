"""SQLModel tables: the database is the source of truth for every tab."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.contract import JobStatus, NodeKind


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    """An account. The built-in local user (no password) owns work done without signing in."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    #: argon2id hash; empty for the local user, who cannot sign in with a password.
    password_hash: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class AuthSession(SQLModel, table=True):
    """A signed-in browser. Only a hash of the cookie's token is stored."""

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class MediaGrant(SQLModel, table=True):
    """Who may see a stored image: the uploader, or the owner of the project it was made in."""

    name: str = Field(primary_key=True, max_length=80)
    user_id: int = Field(primary_key=True, foreign_key="user.id")


class WebhookDelivery(SQLModel, table=True):
    """A signed callback already applied: the same delivery again is a replay."""

    fingerprint: str = Field(primary_key=True, max_length=64)
    job_id: str = Field(index=True)
    received_at: datetime = Field(default_factory=utcnow)


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=200)
    #: Last change-event sequence number of this project; only ever increases.
    last_seq: int = 0
    #: Run a node by itself when a node it uses completes (off: only mark it stale).
    autorun: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Node(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    kind: NodeKind
    prompt: str = ""
    model: str
    aspect_ratio: str = "1:1"
    #: URLs (app-relative `/media/...`) of the fixed images (uploads) an edit node works on.
    input_images: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Nodes whose current result an edit node works on, followed live (see core/notebook.py).
    input_nodes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Current result, denormalised so rendering a canvas is one query.
    image_path: str | None = None
    #: The job that made the current result: what staleness compares the node with.
    #: No foreign key: job and node already point at each other the other way.
    result_job_id: str | None = None
    #: Why the node is not up to date ("Stale: #1 has a new result", "Waiting for #1"), or "".
    #: Written by core/staleness.py in the transaction of whatever changed it.
    freshness: str = ""
    #: Place on the canvas; nodes are shown by position, then id.
    position: int = 0
    error: str | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class NodeResult(SQLModel, table=True):
    """A node's history of results; the newest is shown."""

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    job_id: str = Field(foreign_key="job.id")
    image_path: str
    created_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    node_id: int | None = Field(default=None, foreign_key="node.id", index=True)
    provider: str
    model: str
    prompt: str
    aspect_ratio: str
    input_images: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: For each input node (id as text), the job of the result this job used: staleness
    #: compares it with the input's current result. Not in the change feed.
    input_results: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: JobStatus = JobStatus.QUEUED
    #: Increases on every change; a tab drops any update older than what it shows.
    version: int = 1
    provider_task_id: str | None = Field(default=None, index=True)
    #: The provider's own data for finding the task again (see `TaskRef.handle`).
    provider_handle: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: Live detail from the provider ("position 3 in queue"); empty when there is none.
    progress: str = ""
    #: How many timeline steps the job has; a tab showing the timeline reloads when it grows.
    #: Not itself in the change feed: an `announced` step is (see `JobStep`).
    steps: int = 0
    #: Secret in the callback URL, so a forged callback for this job is rejected.
    callback_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Set by the tab that clicked Generate; makes creation idempotent and lets the
    #: tab replace its optimistic row with the real one.
    client_request_id: str | None = Field(default=None, index=True, unique=True)
    retry_of: str | None = None
    #: A realtime self-test's job: it runs the real chain but is in no queue and no node history.
    synthetic: bool = False
    #: Fallback polling schedule; not part of the change feed (tabs need not see it).
    poll_attempts: int = 0
    next_poll_at: datetime | None = Field(default=None, index=True)
    #: Which worker process holds the job's background work (submit or poll), until when;
    #: an expired lease is free again, so a worker that dies releases its work.
    claimed_by: str | None = None
    lease_until: datetime | None = None
    error: str | None = None
    image_path: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class PlanStep(SQLModel, table=True):
    """A node a run plan (Run all stale, Generate with stale ancestors, Autorun) will run.

    One row per node at most (the primary key): two tabs planning the same node at once
    plan it once. `waiting` until its inputs have results, `running` with its job, and
    `blocked` with the reason when something upstream failed. A row goes when its job ends.
    Tabs never read it: each node's `freshness`, written in the same transaction, shows it.
    """

    node_id: int = Field(primary_key=True)
    project_id: int = Field(index=True)
    status: str = Field(default="waiting", max_length=16)
    job_id: str | None = Field(default=None, index=True)
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class JobStep(SQLModel, table=True):
    """One step of a job's way through the update chain, for its timeline."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True)
    step: str
    at: datetime = Field(default_factory=utcnow)
    detail: str = ""
    #: Tell the tabs the timeline grew (a trigger writes the job's change event); steps
    #: written with a status change need not, that change is announced already.
    announced: bool = False


class ChangeEvent(SQLModel, table=True):
    """One row changed, numbered per project: the feed tabs catch up from.

    Written only by the database's triggers (migration 0001), in the transaction of the
    row change, so every writer (this app, another process, psql) feeds the tabs.
    """

    __table_args__ = (UniqueConstraint("project_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    seq: int
    entity: str  # "job" | "node" | "project"
    entity_id: str
    op: str  # "upsert" | "delete"
    created_at: datetime = Field(default_factory=utcnow)


class FeedTab(SQLModel, table=True):
    """A browser tab showing a project, as its own delivery reports describe it."""

    tab_id: str = Field(primary_key=True, max_length=64)
    project_id: int = Field(index=True)
    browser: str = Field(default="", max_length=120)
    connected_at: datetime = Field(default_factory=utcnow)
    #: The highest change this tab has shown on its screen, and when (server clock).
    seq: int = 0
    seen_at: datetime = Field(default_factory=utcnow)
    #: Its last report: a tab silent for long is gone (closed without saying so, or offline).
    heard_at: datetime = Field(default_factory=utcnow)
    #: How many times its websocket connected again (the tab counts them).
    reconnects: int = 0
    #: When it was last told to resync; a tab is told again only if it stays behind.
    resync_asked_at: datetime | None = None
    closed: bool = False


class FeedChange(SQLModel, table=True):
    """A job change waiting for the project's tabs to confirm it on their screens."""

    project_id: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    #: No foreign key: the ledger is advisory and must never hold up deleting a job (even from psql).
    job_id: str = Field(index=True)
    published_at: datetime = Field(default_factory=utcnow)
    #: "" while waiting; "late" when some tab missed it; "seen" when every tab showed it;
    #: "unwatched" when no tab had the project open.
    verdict: str = Field(default="", max_length=16, index=True)


class FeedSighting(SQLModel, table=True):
    """One tab showed one change, this long after it was published."""

    project_id: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    tab_id: str = Field(primary_key=True, max_length=64)
    delay_ms: int


class Membership(SQLModel, table=True):
    """Someone the owner shared a project with, and what they may do there.

    The owner is not a row here (`Project.owner_id`); a row's role is `editor` or `viewer`
    (see `core.access.Role`). Its changes are in the project's change feed (migration 0003).
    """

    project_id: int = Field(primary_key=True, foreign_key="project.id")
    user_id: int = Field(primary_key=True, foreign_key="user.id", index=True)
    role: str = Field(max_length=16)
    added_at: datetime = Field(default_factory=utcnow)


class ProjectMedia(SQLModel, table=True):
    """An image used in a project (a result, or an edit node's input): its members may see it."""

    name: str = Field(primary_key=True, max_length=80)
    project_id: int = Field(primary_key=True, foreign_key="project.id", index=True)
