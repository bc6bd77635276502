"""The composition root of the Reflex-free core: one object the web layer holds."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass

import httpx
import redis.asyncio

from core.access import Access, MediaLinks, load_or_create_secret
from core.accounts import Accounts, UserView
from core.canvas import Canvas
from core.changes import ChangeNotifier, ChangeWriter
from core.contract import ProviderRegistry
from core.db import Database
from core.delivery import ConfirmationInbox, DeliveryLedger
from core.fetch import FetchPolicy
from core.jobs import JobBook
from core.media import MediaStore
from core.notebook import Notebook
from core.pg_listen import ChangeListener
from core.pipeline import Pipeline
from core.plan import RunPlan
from core.polling import Poller, PollPolicy
from core.presence import PresenceStore, presence_store
from core.retries import RetryPolicy
from core.settings import Settings
from core.sharing import Sharing
from core.sign_in_limits import SignInLimiter
from core.throttle import SubmitThrottle
from core.webhooks import WebhookGate
from providers.registry import build_registry


@dataclass
class Core:
    settings: Settings
    db: Database
    notifier: ChangeNotifier
    registry: ProviderRegistry
    canvas: Canvas
    jobs: JobBook
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
    #: Who has each project open (Redis when the app runs with it, else this process's memory).
    presence: PresenceStore
    #: The reactive notebook: node references, order, autorun; and the run plans.
    notebook: Notebook
    plan: RunPlan
    #: On PostgreSQL: hears changes other processes commit; the web layer runs `listener.run()`.
    listener: ChangeListener | None = None

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
        registry = build_registry(settings, http, db, local_secret)
        jobs = JobBook(writer, registry, stall_after_s=settings.stall_after_s)
        media = MediaStore(settings.media_dir)
        access = Access(db.session)
        links = MediaLinks(secret)
        fetch = FetchPolicy(
            max_bytes=settings.max_image_bytes,
            timeout_s=settings.download_timeout_s,
            allow_hosts=settings.image_fetch_allow_hosts,
            trusted_origins=(settings.base_url,),
        )
        pipeline = Pipeline(
            jobs,
            registry,
            media,
            http,
            base_url=settings.base_url,
            fetch=fetch,
            throttle=SubmitThrottle(),
            links=links,
            lease_s=settings.work_lease_s,
            database_lost_within=db.lost_within,
            retry=RetryPolicy(attempts=settings.submit_attempts, base_s=settings.retry_base_s),
            first_poll_s=settings.poll_start_s,
        )
        poll = PollPolicy(start_s=settings.poll_start_s, cap_s=settings.poll_cap_s, timeout_s=settings.poll_timeout_s)
        canvas = Canvas(
            writer,
            registry,
            max_prompt_chars=settings.max_prompt_chars,
            max_project_name_chars=settings.max_project_name_chars,
        )
        listener = ChangeListener(db.libpq_url, notifier) if db.is_postgres else None
        delivery = DeliveryLedger(writer)
        plan = RunPlan(writer, jobs)
        jobs.on_settled = plan.job_settled
        return cls(
            settings,
            db,
            notifier,
            registry,
            canvas,
            jobs,
            media,
            pipeline,
            Poller(jobs, registry, pipeline, poll),
            WebhookGate(jobs, registry, pipeline),
            http,
            Accounts(db.session),
            access,
            links,
            SignInLimiter(settings.sign_in_limit_per_account, settings.sign_in_limit_per_address, settings.redis_url),
            delivery,
            ConfirmationInbox(delivery),
            Sharing(writer),
            presence_store(settings.redis_url, settings.presence_timeout_s),
            Notebook(writer, registry),
            plan,
            listener,
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
