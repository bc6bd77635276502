"""The provider interface: narrow and swappable, like an httpx transport.

A provider turns a `SubmitRequest` into a task id, reports a task's state as a
`TaskUpdate` (by `query` or from a webhook), and describes the models it serves.
Everything else (storage, ordering, fan-out to tabs) is the app's job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from starlette.routing import BaseRoute


def utcnow() -> datetime:
    """The one clock of rows and tasks: aware UTC."""
    return datetime.now(UTC)


class JobStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        """Order of progress: a job only ever moves to a higher rank."""
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self.rank == _RANK[JobStatus.COMPLETED]


_RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.SUBMITTED: 1,
    JobStatus.RUNNING: 2,
    JobStatus.COMPLETED: 3,
    JobStatus.FAILED: 3,
    JobStatus.CANCELLED: 3,
}


class NodeKind(StrEnum):
    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_EDIT = "image_edit"


@dataclass(frozen=True)
class ModelInfo:
    """A model a provider serves, as shown in a node's Model picker."""

    id: str
    provider: str
    kind: NodeKind
    aspect_ratios: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4")
    max_input_images: int = 0
    #: Why the model cannot run here (e.g. a missing API key); empty when it can.
    disabled_reason: str = ""
    #: It draws from a seed the caller may choose (the node's `Seed` field is offered).
    takes_seed: bool = False

    @property
    def fallback_aspect_ratio(self) -> str:
        """What a node switched to this model draws when it cannot draw the node's ratio."""
        return "1:1" if "1:1" in self.aspect_ratios else self.aspect_ratios[0]


@dataclass(frozen=True)
class SubmitRequest:
    job_id: str
    model: str
    prompt: str
    aspect_ratio: str
    callback_url: str
    input_image_urls: tuple[str, ...] = ()
    #: For a model that `takes_seed`: the seed to draw from.
    seed: int | None = None


@dataclass(frozen=True)
class TaskRef:
    """A provider's handle on a submitted task, stored with the job."""

    task_id: str
    #: Whatever else the provider needs to find the task again (e.g. Fal's status URL).
    handle: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskProgress:
    """How far an unfinished task is, as far as its provider says: live detail, never stored."""

    #: Its place in the provider's queue, 1 for next (None: not queued there, or not said).
    queue_position: int | None = None
    #: 0-100 (None: the provider reports no fraction).
    percent: float | None = None
    #: The sampler's latest intermediate image (JPEG, WebP or PNG bytes); the app shrinks it.
    preview: bytes | None = None


#: How a provider that learns of progress by itself (a render it runs, a websocket it reads)
#: reports it: `(job id, the task's status, what it knows)`. Called in the event loop.
ProgressSink = Callable[[str, JobStatus, TaskProgress], None]


@dataclass(frozen=True)
class TaskUpdate:
    """What a provider says about a task, from a poll or a webhook."""

    task_id: str
    status: JobStatus
    result_urls: tuple[str, ...] = ()
    error: str | None = None
    #: False for an unsigned callback: a hint the app confirms with `query` first.
    verified: bool = True
    #: Live detail for the queue row, e.g. "position 3 in queue" or the last log line.
    progress: str = ""
    #: The same, structured (queue position, percent) where the provider reports it.
    live: TaskProgress | None = None
    #: For a signed webhook, its signature: the same delivery seen twice is a replay.
    delivery_id: str = ""
    #: True when the callback's signature does not vouch for what it reports (KIE.ai signs only
    #: the task id and timestamp; Fal.ai may send a result too large to include): the app asks
    #: `query` for the task's state and result, and the callback is only the prompt to ask.
    confirm_with_query: bool = False


@dataclass(frozen=True)
class SubmitLimit:
    """A provider's documented cap on new tasks per account, enforced by the app before it submits.

    Hitting the provider's own limit gets 429s that it does not queue; waiting here keeps the
    job `queued` with `reason` on its row instead.
    """

    tasks: int
    per_s: int
    #: Who shares the cap (a hash of the account's key, never the key itself).
    account: str
    reason: str

    @classmethod
    def per_account(cls, api_key: str, tasks: int, per_s: int, reason: str) -> SubmitLimit | None:
        """The cap for the account behind `api_key`; None without a key (nothing is submitted then)."""
        if not api_key:
            return None
        return cls(tasks, per_s, hashlib.sha256(api_key.encode()).hexdigest()[:16], reason)


class ProviderError(Exception):
    """A provider call failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class WebhookRejected(Exception):
    """A callback that must not touch any job (malformed, unsigned, forged)."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


#: How far a signed callback's timestamp may be from our clock: old ones are replays.
WEBHOOK_MAX_SKEW_S = 300


def require_fresh_timestamp(timestamp: str, now: float, label: str) -> None:
    """A signed callback's timestamp must be ASCII digits within `WEBHOOK_MAX_SKEW_S` of now, else 401.

    ASCII only: `str.isdigit` also accepts digits like '²' that `int` refuses.
    """
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > WEBHOOK_MAX_SKEW_S:
        raise WebhookRejected(f"Missing or stale {label} webhook timestamp", 401)


def require_reachable_inputs(provider_label: str, public_url: bool) -> None:
    """A remote provider downloads edit inputs from this app: refuse clearly when it cannot reach us."""
    if not public_url:
        raise ProviderError(
            f"{provider_label} must download the input images from this app, but PUBLIC_BASE_URL is not set "
            f"to an address it can reach; set PUBLIC_BASE_URL to edit with {provider_label}"
        )


#: The app's own bound on a task at a provider that documents no longest run (the fallback
#: poll gave up after this before providers declared theirs): image models finish in seconds
#: to minutes, so a task still unfinished after it is taken as lost.
UNDOCUMENTED_MAX_RUN_S = 15 * 60.0


@runtime_checkable
class Provider(Protocol):
    """One image-generation backend. Adding a provider is one module implementing this."""

    name: str
    #: How people know it ("KIE.ai"), in what the app tells them ("waiting for KIE.ai").
    label: str
    models: Sequence[ModelInfo]
    #: Extra HTTP routes the provider serves inside the app (the local provider's outputs).
    routes: Sequence[BaseRoute]
    #: The documented rate limit on new tasks, or None when there is none to respect.
    submit_limit: SubmitLimit | None
    #: Runs on this machine: its callbacks and input images use the app's own loopback address
    #: (`Settings.own_url`), which holds when the public URL's tunnel is down.
    runs_here: bool
    #: The longest a task may run there (the provider's documented timeout, or the app's own bound
    #: where it documents none): polling gives up on a task after it, plus a margin.
    max_run_s: float
    #: Whether `cancel` stops a task at the provider; False where its API has no cancel.
    can_cancel: bool

    async def submit(self, request: SubmitRequest) -> TaskRef:
        """Start a task and return how to find it again."""
        ...

    async def query(self, task: TaskRef) -> TaskUpdate:
        """Ask the provider where a task is (fallback when no webhook arrives)."""
        ...

    async def cancel(self, task: TaskRef) -> None:
        """Best effort: ask the provider to stop a task."""
        ...

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        """Verify and parse a callback, or raise `WebhookRejected`."""
        ...


@dataclass
class ProviderRegistry:
    """Providers by name; the single place the app looks them up."""

    providers: dict[str, Provider] = field(default_factory=dict)

    def register(self, provider: Provider) -> None:
        self.providers[provider.name] = provider

    def get(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise ProviderError(f"Unknown provider {name!r}") from None

    def all_models(self) -> list[ModelInfo]:
        return [m for p in self.providers.values() for m in p.models]

    def model(self, model_id: str) -> ModelInfo:
        for info in self.all_models():
            if info.id == model_id:
                return info
        raise ProviderError(f"Unknown model {model_id!r}")

    def runnable_model(self, model_id: str) -> ModelInfo:
        info = self.model(model_id)
        if info.disabled_reason:
            raise ProviderError(f"{model_id} is not available: {info.disabled_reason}")
        return info
