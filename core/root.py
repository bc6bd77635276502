"""The composition root of the Reflex-free core: one object the web layer holds."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
from dataclasses import dataclass, field

import httpx
import redis.asyncio

from core.changes import ChangeNotifier, ChangeWriter
from core.contract import ProviderRegistry
from core.db import WORKER_ID, Database
from core.jobs.async_book import AsyncJobBook
from core.jobs.book import JobBook, place_of
from core.jobs.pipeline import Pipeline
from core.jobs.plan import RunPlan
from core.jobs.polling import Poller, PollPolicy
from core.jobs.progress import ProgressBoard
from core.jobs.throttle import SubmitThrottle
from core.jobs.webhooks import WebhookGate
from core.media.fetch import FetchPolicy
from core.media.previews import PreviewStore
from core.media.store import MediaStore
from core.notebook.canvas import Canvas
from core.notebook.edits import Notebook
from core.notebook.project_removal import ProjectRemoval
from core.notebook.results import Results
from core.notebook.undo import UndoBook
from core.people.access import Access, MediaLinks, MediaPasses, load_or_create_secret
from core.people.accounts import Accounts, UserView
from core.people.invitations import Invitations, InviteTokens
from core.people.sharing import Sharing
from core.people.sign_in_limits import SignInLimiter
from core.realtime.delivery import ConfirmationInbox, DeliveryLedger
from core.realtime.pg_listen import ChangeListener
from core.realtime.presence import PresenceStore, presence_store
from core.realtime.progress_relay import ProgressRelay
from core.retries import RetryPolicy
from core.settings import Settings
from providers.registry import build_registry


@dataclass
class Core:
    settings: Settings
    db: Database
    notifier: ChangeNotifier
    registry: ProviderRegistry
    canvas: Canvas
    jobs: JobBook
    #: The same book from the event loop (each call in a thread): what async code uses.
    async_jobs: AsyncJobBook
    media: MediaStore
    pipeline: Pipeline
    poller: Poller
    webhooks: WebhookGate
    http: httpx.AsyncClient
    accounts: Accounts
    access: Access
    links: MediaLinks
    sign_in_limiter: SignInLimiter
    #: Which tab showed which change (the tabs' confirmations), and the batching door to it.
    delivery: DeliveryLedger
    inbox: ConfirmationInbox
    sharing: Sharing
    invitations: Invitations
    #: Who has each project open (Redis when the app runs with it, else this process's memory).
    presence: PresenceStore
    #: The reactive notebook: node references, order, autorun; and the run plans.
    notebook: Notebook
    plan: RunPlan
    #: Live progress of unfinished jobs, in memory (core/jobs/progress.py).
    progress: ProgressBoard
    #: Undo: a recorded edit taken back, for everyone on the project.
    undo: UndoBook
    #: Deleting a project (its owner), and its images no other project uses.
    removal: ProjectRemoval
    #: A result opened large: what made it, and the node's others.
    results: Results
    #: On PostgreSQL: hears changes other processes commit; the web layer runs `listener.run()`.
    listener: ChangeListener | None = None
    #: Who was recently allowed which image (`/media`), forgotten when their memberships change.
    media_passes: MediaPasses = field(default_factory=MediaPasses)

    @classmethod
    def build(cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> Core:
        """`transport` lets tests route the app's outgoing HTTP in-process."""
        db = Database(settings.db_url)
        db.migrate()
        notifier = ChangeNotifier()
        writer = ChangeWriter(db.session, notifier, db.read_session)
        http = httpx.AsyncClient(timeout=httpx.Timeout(settings.download_timeout_s, connect=5.0), transport=transport)
        secret = settings.secret_key.get_secret_value().encode() or load_or_create_secret(
            settings.data_dir / "secret_key"
        )
        # Every worker derives the same key, so a callback one worker asked for is verified by any.
        local_secret = hmac.new(secret, b"local provider callbacks", hashlib.sha256).hexdigest()
        previews = PreviewStore(settings.data_dir / "previews")
        progress = ProgressBoard(previews, functools.partial(place_of, db.read_session))
        registry = build_registry(settings, http, db, progress.report, local_secret)
        jobs = JobBook(writer, registry, stall_after_s=settings.stall_after_s)
        async_jobs = AsyncJobBook(jobs)
        media = MediaStore(settings.media_dir)
        access = Access(db.session, db.read_session)
        links = MediaLinks(secret)
        fetch = FetchPolicy(
            max_bytes=settings.max_image_bytes,
            timeout_s=settings.download_timeout_s,
            allow_hosts=settings.image_fetch_allow_hosts,
            # ComfyUI's results come from the server the operator named, often on loopback or the LAN.
            trusted_origins=(settings.base_url, settings.own_url, *filter(None, [settings.comfyui_url])),
        )
        pipeline = Pipeline(
            async_jobs,
            registry,
            media,
            http,
            base_url=settings.base_url,
            own_url=settings.own_url,
            fetch=fetch,
            throttle=SubmitThrottle(),
            links=links,
            lease_s=settings.work_lease_s,
            database_lost_within=db.lost_within,
            retry=RetryPolicy(attempts=None, base_s=settings.retry_base_s, for_s=settings.submit_retry_for_s),
            first_poll_s=settings.poll_start_s,
            progress=progress,
        )
        poll = PollPolicy(start_s=settings.poll_start_s, cap_s=settings.poll_cap_s)
        canvas = Canvas(
            writer,
            registry,
            media,
            max_prompt_chars=settings.max_prompt_chars,
            max_project_name_chars=settings.max_project_name_chars,
            queue_rows=settings.queue_rows,
        )
        listener = None
        if db.is_postgres:
            # Progress ticks cross to the other workers as NOTIFYs alone (no row per tick).
            relay = ProgressRelay(db.engine, progress, WORKER_ID)
            progress.relay = relay.send
            listener = ChangeListener(db.libpq_url, notifier, on_progress=relay.receive)
        delivery = DeliveryLedger(writer)
        plan = RunPlan(writer, jobs)
        jobs.on_settled = plan.job_settled
        plan.on_started = pipeline.submit_soon  # one submit route: a plan's jobs go where a Generate's go
        media_passes = MediaPasses()
        # Every membership change, this process's or (through LISTEN) another's, reaches the notifier.
        notifier.on_member.append(media_passes.forget_user)
        return cls(
            settings,
            db,
            notifier,
            registry,
            canvas,
            jobs,
            async_jobs,
            media,
            pipeline,
            Poller(async_jobs, registry, pipeline, poll),
            WebhookGate(async_jobs, registry, pipeline),
            http,
            Accounts(db.session, db.read_session),
            access,
            links,
            SignInLimiter(settings.sign_in_limit_per_account, settings.sign_in_limit_per_address, settings.redis_url),
            delivery,
            ConfirmationInbox(delivery),
            Sharing(
                writer,
                InviteTokens(secret),
                invite_ttl_s=settings.invite_ttl_s,
                add_limit_per_owner=settings.share_add_limit_per_owner,
                limits_storage_url=settings.redis_url,
            ),
            Invitations(writer),
            presence_store(settings.redis_url, settings.presence_timeout_s),
            Notebook(writer, registry),
            plan,
            progress,
            UndoBook(writer),
            ProjectRemoval(writer, media),
            Results(writer),
            listener,
            media_passes,
        )

    def viewer(self, session_token: str) -> UserView | None:
        """Who is acting: the signed-in user, else the local user unless sign-in is required."""
        user = self.accounts.user_for(session_token)
        if user is None and not self.settings.auth_required:
            return self.accounts.local_user()
        return user

    async def readiness(self) -> dict[str, str]:
        """Each check's verdict: "ok" or what is wrong."""
        checks: dict[str, str] = {}
        try:
            await asyncio.to_thread(self.db.ping)
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["change_feed"] = "ok" if self.notifier.listening else "no listener is running"
        if self.listener is not None:
            checks["change_listener"] = self.listener.state
        if self.settings.redis_url:
            checks["redis"] = await _ping_redis(self.settings.redis_url)
        checks["delivery_ledger"] = self.delivery.health()
        problems = self.settings.problems()
        checks["config"] = "; ".join(problems) if problems else "ok"
        return checks

    async def aclose(self) -> None:
        self.pipeline.forget_retries()
        await self.pipeline.drain()
        await self.http.aclose()
        await self.presence.aclose()
        self.db.engine.dispose()


async def _ping_redis(url: str) -> str:
    """Tabs on several workers share their state through Redis: without it no event is handled."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()  # type: ignore[misc]  # redis-py types ping for both its clients
        return "ok"
    except (redis.RedisError, OSError) as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        await client.aclose()
