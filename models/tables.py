"""SQLModel tables: the database is the source of truth for every tab."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.contract import JobStatus, NodeKind, utcnow

__all__ = ["utcnow"]  # the tables' clock, declared once in the contract (providers use it too)


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


#: SQLite hands a deleted row's id to the next row unless told not to (migration 0009 says why).
IDS_NEVER_REUSED = {"sqlite_autoincrement": True}


class Project(SQLModel, table=True):
    __table_args__ = IDS_NEVER_REUSED
    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=200)
    #: Last change-event sequence number of this project; only ever increases.
    last_seq: int = 0
    #: Run a node by itself when a node it uses completes (off: only mark it stale).
    autorun: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Node(SQLModel, table=True):
    __table_args__ = IDS_NEVER_REUSED
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    kind: NodeKind
    prompt: str = ""
    model: str
    aspect_ratio: str = "1:1"
    #: URLs (app-relative `/media/...`) of the fixed images (uploads) an edit node works on.
    input_images: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Nodes whose current result an edit node works on, followed live (see core/notebook/edits.py).
    input_nodes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: Current result, denormalised so rendering a canvas is one query.
    image_path: str | None = None
    #: The job that made the current result: what staleness compares the node with.
    #: No foreign key: job and node already point at each other the other way.
    result_job_id: str | None = None
    #: Why the node is not up to date ("Stale: #1 has a new result", "Waiting for #1"), or "".
    #: Written by core/notebook/staleness.py in the transaction of whatever changed it.
    freshness: str = ""
    #: Place on the canvas; nodes are shown by position, then id.
    position: int = 0
    #: How many jobs one Generate makes (`Images`, 1-4): shown together, the first current.
    batch_size: int = 1
    #: The `Seed` its jobs use, as typed ("" : a random one per job), for models that take one.
    seed: str = ""
    #: Its newest result, current or not (a batch's others): a tab puts it on top of the history
    #: it holds, as change messages carry no history.
    latest_result: str | None = None
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
    #: A queued job whose provider failed in a way that may pass (down, 429, 5xx) waits for its
    #: next submit try until `retry_at`; `waiting_reason` says for whom ("waiting for KIE.ai").
    #: Tabs count down to `retry_at` themselves; any worker submits it once it is due.
    retry_at: datetime | None = None
    waiting_reason: str = ""
    #: Failed submit tries so far, and when the first failed: tries stop `SUBMIT_RETRY_FOR_S` after it.
    submit_failures: int = 0
    failing_since: datetime | None = None
    #: How many timeline steps the job has; a tab showing the timeline reloads when it grows.
    #: Not itself in the change feed: an `announced` step is (see `JobStep`).
    steps: int = 0
    #: Secret in the callback URL, so a forged callback for this job is rejected.
    callback_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Set by the tab that clicked Generate; makes creation idempotent and lets the
    #: tab replace its optimistic row with the real one.
    client_request_id: str | None = Field(default=None, index=True, unique=True)
    retry_of: str | None = None
    #: The seed the model drew with (None: the model takes none); shown with the result, reusable.
    seed: int | None = None
    #: The first job of the Generate that made this one (a batch of `Images`); None for that first.
    batch_of: str | None = None
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
    (see `core.people.access.Role`). Its changes are in the project's change feed (migration 0003).
    """

    project_id: int = Field(primary_key=True, foreign_key="project.id")
    user_id: int = Field(primary_key=True, foreign_key="user.id", index=True)
    role: str = Field(max_length=16)
    added_at: datetime = Field(default_factory=utcnow)


class Invitation(SQLModel, table=True):
    """Someone the owner shared a project with by email, until they open their link (`core.people.invitations`).

    The link's token is not stored: it is derived from `nonce` and the app's secret, so the
    owner can be shown it again, and only its hash is kept for the lookup; a copy of the
    database lets nobody in. Its changes are in the project's change feed (migration 0005).
    """

    __table_args__ = (UniqueConstraint("project_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    email: str = Field(max_length=254)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    nonce: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class ProjectMedia(SQLModel, table=True):
    """An image used in a project (a result, or an edit node's input): its members may see it."""

    name: str = Field(primary_key=True, max_length=80)
    project_id: int = Field(primary_key=True, foreign_key="project.id", index=True)


class UndoStep(SQLModel, table=True):
    """An edit someone may undo (core/notebook/undo.py): what it changed, as it was before.

    Written in the edit's own transaction; undoing it is one more transaction, whose node
    changes reach every tab through the change feed like any edit. Tabs never read it.
    """

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    #: Whose edit: Undo (the button, Ctrl/Cmd+Z) takes back the user's own last one.
    user_id: int
    #: `core.notebook.undo_log.UndoKind`
    kind: str = Field(max_length=16)
    node_id: int
    #: What to put back (for a deleted node: its row, its history, the jobs it had).
    before: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    #: The project's sequence number once undone (the change that undid it); None until then.
    undone_seq: int | None = None
