"""Accounts, per-user isolation, private images and a corpus of hostile webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlmodel import select

from core.contract import JobStatus, NodeKind, TaskRef, TaskUpdate
from core.errors import NotFound
from core.people.access import use_media
from core.people.accounts import AuthError, token_hash
from core.root import Core
from core.settings import Settings
from models.tables import AuthSession, Node, Project
from providers.local import SIGNATURE_HEADER, TIMESTAMP_HEADER, LocalProvider, sign
from providers.local_render import render_text_to_image
from providers.local_tasks import LocalTask
from rxapp.api import MAX_WEBHOOK_BYTES, build_api
from rxapp.auth import SESSION_COOKIE
from tests.conftest import LateBoundASGI
from tests.wait import TERMINAL, job_reaches

PNG = render_text_to_image("hostile", "1:1")
HOSTILE = "results.example"  # served by `hostile_results` below, never by the network


async def _drip() -> AsyncIterator[bytes]:
    while True:
        await asyncio.sleep(0.2)
        yield b"\x89"


async def _endless() -> AsyncIterator[bytes]:
    for _ in range(100):  # 100 MB, sent without a Content-Length
        yield b"\0" * (1024 * 1024)


def hostile_results(request: httpx.Request) -> httpx.Response:
    match request.url.path:
        case "/ok.png":
            return httpx.Response(200, content=PNG)
        case "/page.png":
            return httpx.Response(200, content=b"<html>not an image</html>")
        case "/huge.png":
            return httpx.Response(200, content=_endless())
        case "/slow.png":
            return httpx.Response(200, content=_drip())
    return httpx.Response(404)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        public_base_url="http://testapp",
        local_delay_s=0.05,
        image_fetch_allow_hosts=(HOSTILE,),
        max_image_bytes=5 * 1024 * 1024,
        download_timeout_s=1.0,
    )


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    app = LateBoundASGI()
    asgi = httpx.ASGITransport(app=app)

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == HOSTILE:
            return hostile_results(request)
        return await asgi.handle_async_request(request)

    core = Core.build(settings, transport=httpx.MockTransport(route))
    app.app = build_api(core)
    yield core
    await core.aclose()


def _client(core: Core, token: str = "") -> httpx.AsyncClient:
    cookies = {SESSION_COOKIE: token} if token else None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_api(core)), base_url="http://testapp", cookies=cookies
    )


# Accounts --------------------------------------------------------------------
def test_sign_up_sign_in_and_out(core: Core) -> None:
    user, token = core.accounts.sign_up(" Alice@Example.com ", "correct horse")
    assert user.email == "alice@example.com"
    assert core.accounts.user_for(token) == user
    with core.db.session() as session:
        stored = session.exec(select(AuthSession)).one()
    assert stored.token_hash == token_hash(token) and token not in stored.token_hash  # only the hash is kept
    _, second = core.accounts.sign_in("alice@example.com", "correct horse")
    core.accounts.sign_out(token)
    assert core.accounts.user_for(token) is None
    assert core.accounts.user_for(second) == user  # signing out one browser leaves the others


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "long enough", "valid email"),
        ("bob@example.com", "short", "8 to 256"),
        ("bob@example.com", "x" * 257, "8 to 256"),
        ("local@localhost", "long enough", "reserved"),
    ],
)
def test_sign_up_refuses_bad_input(core: Core, email: str, password: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        core.accounts.sign_up(email, password)


def test_sign_in_failures_do_not_say_which_part_was_wrong(core: Core) -> None:
    core.accounts.sign_up("carol@example.com", "the password")
    with pytest.raises(AuthError, match=r"^Wrong email or password$"):
        core.accounts.sign_in("carol@example.com", "not the password")
    with pytest.raises(AuthError, match=r"^Wrong email or password$"):
        core.accounts.sign_in("nobody@example.com", "the password")
    with pytest.raises(AuthError, match="already exists"):
        core.accounts.sign_up("CAROL@example.com", "another one")


def test_expired_session_signs_nobody_in(core: Core) -> None:
    _, token = core.accounts.sign_up("dave@example.com", "long enough")
    with core.db.session() as session:
        row = session.get(AuthSession, token_hash(token))
        assert row is not None
        row.expires_at = row.created_at - timedelta(seconds=1)
    assert core.accounts.user_for(token) is None


def test_viewer_is_the_local_user_only_when_sign_in_is_optional(
    core: Core, settings: Settings, make_core: Callable[[Settings], Core]
) -> None:
    assert core.viewer("").is_local  # type: ignore[union-attr]
    assert core.viewer("forged-token").is_local  # type: ignore[union-attr]
    strict = make_core(Settings(data_dir=settings.data_dir, auth_required=True))
    assert strict.viewer("") is None and strict.viewer("forged-token") is None
    _, token = strict.accounts.sign_up("erin@example.com", "long enough")
    assert strict.viewer(token).email == "erin@example.com"  # type: ignore[union-attr]


# Isolation ---------------------------------------------------------------------
def test_a_user_sees_and_reaches_only_their_own_projects(core: Core) -> None:
    alice, _ = core.accounts.sign_up("alice@example.com", "long enough")
    bob, _ = core.accounts.sign_up("bob@example.com", "long enough")
    project = core.canvas.create_project(alice.id, "Alice's")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="secret plans")
    job = core.jobs.create(node.id)
    assert [p.name for p in core.canvas.list_projects(alice.id)] == ["Alice's"]
    assert core.canvas.ensure_default_project(bob.id).name == "My first project"  # Bob gets his own
    assert [p.name for p in core.canvas.list_projects(bob.id)] == ["My first project"]
    core.access.project(alice.id, project.id)
    assert core.access.node(alice.id, node.id) == project.id
    assert core.access.job(alice.id, job.id) == project.id
    for check in (
        lambda: core.access.project(bob.id, project.id),
        lambda: core.access.node(bob.id, node.id),
        lambda: core.access.job(bob.id, job.id),
        lambda: core.access.project(bob.id, 99999),
    ):
        with pytest.raises(NotFound, match="not found"):  # the same answer as for a row that does not exist
            check()


# Private images -------------------------------------------------------------------
async def test_stored_images_are_served_to_their_owner_or_a_signed_link_only(core: Core) -> None:
    alice, alice_token = core.accounts.sign_up("alice@example.com", "long enough")
    _, bob_token = core.accounts.sign_up("bob@example.com", "long enough")
    url = core.media.save(PNG)
    core.access.grant_media(alice.id, url)
    async with _client(core, alice_token) as alice_http, _client(core, bob_token) as bob_http, _client(core) as anon:
        assert (await alice_http.get(url)).headers["content-type"] == "image/png"
        assert "private" in (await alice_http.get(url)).headers["cache-control"]
        assert (await bob_http.get(url)).status_code == 404
        assert (await anon.get(url)).status_code == 404  # the anonymous local user was not granted it
        signed = core.links.sign(url)
        assert (await anon.get(signed)).status_code == 200
        assert (await anon.get(signed.replace("sig=", "sig=0"))).status_code == 404
        expired = core.links.sign(url, now=time.time() - 2 * 3600)
        assert (await anon.get(expired)).status_code == 404
        other = core.media.save(render_text_to_image("other", "1:1"))
        assert (await anon.get(other + "?" + signed.split("?")[1])).status_code == 404  # a link is for one image
        assert (await alice_http.get("/media/..%2fapp.db")).status_code == 404
        assert (await alice_http.get("/media/" + "0" * 64 + ".png")).status_code == 404


async def test_every_copy_of_an_image_answers_as_its_original(core: Core) -> None:
    alice, alice_token = core.accounts.sign_up("alice@example.com", "long enough")
    _, bob_token = core.accounts.sign_up("bob@example.com", "long enough")
    url = core.media.save(PNG)
    core.access.grant_media(alice.id, url)
    copies = [url + ".w256.webp", url + ".w768.webp"]
    async with _client(core, alice_token) as alice_http, _client(core, bob_token) as bob_http, _client(core) as anon:
        for copy in copies:
            mine = await alice_http.get(copy)
            assert (mine.status_code, mine.headers["content-type"]) == (200, "image/webp")
            assert mine.content == (core.media.root / copy.removeprefix("/media/")).read_bytes()
            assert mine.headers["cache-control"] == "private, max-age=31536000, immutable"
            again = await alice_http.get(copy, headers={"If-None-Match": mine.headers["etag"]})
            assert (again.status_code, again.content) == (304, b"")
        for http in (bob_http, anon):  # a stranger: the same 404 for the original and every copy
            for name in (url, *copies):
                refused = await http.get(name, headers={"If-None-Match": f'"{name.removeprefix("/media/")}"'})
                assert (refused.status_code, refused.text) == (404, "not found")
        original = await alice_http.get(url)
        assert hashlib.sha256(original.content).hexdigest() == url.removeprefix("/media/").split(".")[0]


async def test_an_image_allowed_once_is_served_again_without_asking_the_database(core: Core, monkeypatch) -> None:
    alice, alice_token = core.accounts.sign_up("alice@example.com", "long enough")
    url = core.media.save(PNG)
    core.access.grant_media(alice.id, url)
    async with _client(core, alice_token) as http:
        assert (await http.get(url)).status_code == 200
        asked = []
        monkeypatch.setattr(core.access, "may_see_media", lambda *a: asked.append(a) or False)
        assert (await http.get(url + ".w256.webp")).status_code == 200  # the original's pass covers its copies
        assert (await http.get(url)).status_code == 200
        assert asked == []


async def test_a_finished_job_grants_its_image_to_the_project_owner(core: Core, node_id: int) -> None:
    view = await core.pipeline.generate(node_id)
    job = await job_reaches(core, view.id, *TERMINAL)
    assert job.status == JobStatus.COMPLETED and job.image_path
    assert core.access.may_see_media(core.accounts.local_user().id, job.image_path)


async def test_a_shared_projects_images_are_served_to_its_members_only(core: Core) -> None:
    owner, owner_token = core.accounts.sign_up("owner@example.com", "long enough")
    member, member_token = core.accounts.sign_up("member@example.com", "long enough")
    _, outsider_token = core.accounts.sign_up("outsider@example.com", "long enough")
    project = core.canvas.create_project(owner.id, "Shared")
    url = core.media.save(PNG)
    with core.db.session() as session:
        use_media(session, project.id, [url])  # a result made in the project
    core.sharing.add(project.id, "member@example.com", "viewer")  # an account: access at once
    async with _client(core, member_token) as member_http, _client(core, outsider_token) as outsider_http:
        assert (await member_http.get(url)).status_code == 200
        assert (await outsider_http.get(url)).status_code == 404
        async with _client(core, owner_token) as owner_http:
            assert (await owner_http.get(url)).status_code == 200
        core.invitations.arrived(project.id, member)
        core.sharing.remove(project.id, member.id)
        assert (await member_http.get(url)).status_code == 404  # access ends with the membership


# Sign-in pages ----------------------------------------------------------------------
async def test_sign_up_sets_an_httponly_samesite_cookie(core: Core) -> None:
    async with _client(core) as http:
        page = await http.get("/signup")
        assert page.status_code == 200 and 'action="/signup' in page.text
        response = await http.post(
            "/signup", data={"email": "frank@example.com", "password": "long enough", "next": "/p/3"}
        )
    assert response.status_code == 303 and response.headers["location"] == "/p/3"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert core.accounts.user_for(token).email == "frank@example.com"  # type: ignore[union-attr]


async def test_sign_in_errors_are_shown_as_text_and_redirects_stay_on_site(core: Core) -> None:
    core.accounts.sign_up("grace@example.com", "long enough")
    async with _client(core) as http:
        wrong = await http.post("/login", data={"email": "<script>x</script>@a.b", "password": "nope"})
        assert wrong.status_code == 400 and "Wrong email or password" in wrong.text
        assert "<script>x</script>" not in wrong.text and "&lt;script&gt;" in wrong.text
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            ok = await http.post(
                "/login", data={"email": "grace@example.com", "password": "long enough", "next": target}
            )
            assert ok.status_code == 303 and ok.headers["location"] == "/"
        cross_site = await http.post(
            "/login",
            data={"email": "grace@example.com", "password": "long enough"},
            headers={"origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403


async def test_sign_out_ends_the_session(core: Core) -> None:
    _, token = core.accounts.sign_up("heidi@example.com", "long enough")
    async with _client(core, token) as http:
        response = await http.post("/auth/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert core.accounts.user_for(token) is None


# Hostile webhooks ---------------------------------------------------------------------
def _local(core: Core) -> LocalProvider:
    provider = core.registry.get("local")
    assert isinstance(provider, LocalProvider)
    return provider


def _signed(core: Core, body: dict | bytes, *, task_id: str = "local-task-1", age_s: int = 0, secret: str = ""):
    stamp = str(int(time.time()) - age_s)
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret or _local(core).secret, task_id, stamp),
    }
    return (body if isinstance(body, bytes) else json.dumps(body).encode()), headers


def _completed(url: str) -> dict:
    return {"task_id": "local-task-1", "status": "completed", "result_urls": [url]}


def _job_state(core: Core, job_id: str) -> tuple:
    job = core.jobs.get(job_id)
    with core.db.session() as session:
        node = session.get(Node, job.node_id)
        assert node is not None
        return (job.status, job.version, job.error, job.image_path, node.version, node.image_path)


WebhookRequest = tuple[str, bytes, dict[str, str]]
FORGED = {"task_id": "local-task-1", "status": "failed", "error": "forged"}


@dataclass
class Aim:
    """The submitted job a hostile webhook aims at, and well-formed requests to twist."""

    core: Core
    job_id: str
    token: str

    @property
    def url(self) -> str:
        return f"/api/webhooks/local/{self.job_id}/{self.token}"

    def signed(self, body: dict | bytes, **signing: Any) -> WebhookRequest:
        """`body` to the job's URL, signed (see `_signed` for the twists)."""
        return (self.url, *_signed(self.core, body, **signing))

    def forged(self, *, path: str = "", body: bytes = b"", headers: dict[str, str] | None = None) -> WebhookRequest:
        """A correctly signed "failed" callback, with another path, body or headers."""
        url, signed_body, signed_headers = self.signed(FORGED)
        return (path or url, body or signed_body, {**signed_headers, **(headers or {})})


def _hostile(name: str, request: Callable[[Aim], WebhookRequest], expected: int) -> Any:
    return pytest.param(request, expected, id=name)


@pytest.mark.parametrize(
    ("request_of", "expected"),
    [
        _hostile("malformed JSON", lambda aim: aim.signed(b"{not json"), 400),
        _hostile("JSON that is not an object", lambda aim: aim.signed(b"[1, 2]"), 400),
        _hostile("missing fields", lambda aim: aim.signed({"status": "failed"}), 400),
        _hostile("unknown status", lambda aim: aim.signed({**FORGED, "status": "exploded"}), 400),
        _hostile("wrong content type", lambda aim: aim.forged(headers={"content-type": "text/plain"}), 415),
        _hostile(
            "form content type",
            lambda aim: aim.forged(headers={"content-type": "application/x-www-form-urlencoded"}),
            415,
        ),
        _hostile("body one byte over the limit", lambda aim: aim.forged(body=b"x" * (MAX_WEBHOOK_BYTES + 1)), 413),
        _hostile("10 MB body", lambda aim: aim.forged(body=b"{" + b" " * (10 * 1024 * 1024) + b"}"), 413),
        _hostile("unknown job", lambda aim: aim.forged(path="/api/webhooks/local/no-such-job/x"), 404),
        _hostile("wrong job token", lambda aim: aim.forged(path=f"/api/webhooks/local/{aim.job_id}/wrong-token"), 403),
        _hostile(
            "another provider's route", lambda aim: aim.forged(path=f"/api/webhooks/kie/{aim.job_id}/{aim.token}"), 403
        ),
        _hostile(
            "an unknown provider's route",
            lambda aim: aim.forged(path=f"/api/webhooks/other/{aim.job_id}/{aim.token}"),
            403,
        ),
        _hostile("unknown task id", lambda aim: aim.signed({**FORGED, "task_id": "t-9"}, task_id="t-9"), 409),
        _hostile("absent signature", lambda aim: (aim.url, aim.forged()[1], {"content-type": "application/json"}), 401),
        _hostile("bad signature", lambda aim: aim.signed(FORGED, secret="not-the-secret"), 401),
        _hostile("stale signature", lambda aim: aim.signed(FORGED, age_s=3600), 401),
        _hostile("result on loopback", lambda aim: aim.signed(_completed("http://127.0.0.1:22/x.png")), 422),
        _hostile(
            "result at the metadata service",
            lambda aim: aim.signed(_completed("http://169.254.169.254/latest")),
            422,
        ),
        _hostile("result on a private network", lambda aim: aim.signed(_completed("http://10.0.0.1/x.png")), 422),
        _hostile("result is a local file", lambda aim: aim.signed(_completed("file:///etc/passwd")), 422),
        _hostile("result is not an image", lambda aim: aim.signed(_completed(f"http://{HOSTILE}/page.png")), 422),
        _hostile("result of 100 MB", lambda aim: aim.signed(_completed(f"http://{HOSTILE}/huge.png")), 422),
        _hostile(
            "result from a slow-drip server", lambda aim: aim.signed(_completed(f"http://{HOSTILE}/slow.png")), 422
        ),
    ],
)
async def test_a_hostile_webhook_gets_a_clear_4xx_and_changes_nothing(
    core: Core, node_id: int, request_of: Callable[[Aim], WebhookRequest], expected: int
) -> None:
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("local-task-1"))
    path, payload, headers = request_of(Aim(core, job.id, core.jobs.get(job.id).callback_token))
    before = _job_state(core, job.id)
    async with _client(core) as http:
        response = await http.post(path, content=payload, headers=headers)
    assert response.status_code == expected, response.text
    assert response.json()["result" if expected != 413 and expected != 415 else "error"]  # a reason
    assert _job_state(core, job.id) == before
    assert not any(core.settings.media_dir.iterdir())  # nothing was stored


async def test_a_replayed_signed_delivery_gets_200_and_changes_nothing(core: Core, node_id: int) -> None:
    """A 409 made Replicate, Fal.ai and Standard Webhooks senders deliver it again and again."""
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("local-task-1"))
    url = f"/api/webhooks/local/{job.id}/{core.jobs.get(job.id).callback_token}"
    running = _signed(core, {"task_id": "local-task-1", "status": "running"})
    completed = _signed(core, _completed(f"http://{HOSTILE}/ok.png"))
    async with _client(core) as http:
        assert (await http.post(url, content=running[0], headers=running[1])).status_code == 200
        assert (await http.post(url, content=completed[0], headers=completed[1])).status_code == 200
        done = _job_state(core, job.id)
        stored = sorted(core.settings.media_dir.iterdir())
        for payload, headers in (running, completed):
            replay = await http.post(url, content=payload, headers=headers)
            assert replay.status_code == 200 and "already applied" in replay.json()["result"]
        # Another delivery for the finished job: 200, and its image is not even downloaded.
        late = _signed(core, _completed(f"http://{HOSTILE}/other.png"))
        answer = await http.post(url, content=late[0], headers=late[1])
        assert answer.status_code == 200 and "already completed" in answer.json()["result"]
    assert _job_state(core, job.id) == done
    assert sorted(core.settings.media_dir.iterdir()) == stored
    assert done[0] == JobStatus.COMPLETED


@contextmanager
def _write_transactions(engine: Engine) -> Iterator[set[int]]:
    """Numbers of the transactions that wrote (INSERT, UPDATE, DELETE) while the block ran."""
    begun, current, writers = itertools.count(), {}, set()

    def on_begin(connection: Any) -> None:
        current[id(connection)] = next(begun)

    def on_execute(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writers.add(current[id(connection)])

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield writers
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)


async def test_a_webhook_completion_is_one_short_write_transaction(core: Core, node_id: int) -> None:
    """Receipt, replay record, job, node, history, timeline, media grant and change event commit
    together, after the download: a crash between them cannot leave half a completion."""
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("local-task-1"))
    url = f"/api/webhooks/local/{job.id}/{core.jobs.get(job.id).callback_token}"
    payload, headers = _signed(core, _completed(f"http://{HOSTILE}/ok.png"))
    with _write_transactions(core.db.engine) as writers:
        async with _client(core) as http:
            assert (await http.post(url, content=payload, headers=headers)).status_code == 200
    assert len(writers) == 1
    done = core.jobs.get(job.id)
    assert done.status == JobStatus.COMPLETED and done.image_path
    steps = [step.step for step in core.jobs.timeline(job.id).steps]
    assert steps[-5:] == [
        "webhook.received",
        "image.downloaded",
        "image.stored",
        "status.completed",
        "change.published",
    ]
    with core.db.session() as session:
        owner = session.get(Project, done.project_id)
    assert owner is not None and core.access.may_see_media(owner.owner_id, done.image_path)


async def test_a_refused_result_from_a_webhook_is_settled_by_polling(core: Core, node_id: int) -> None:
    """The webhook changes nothing; our own poll asks the provider and fails the job readably."""
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("local-task-1"))
    update_url = f"http://{HOSTILE}/page.png"
    payload, headers = _signed(core, _completed(update_url))
    async with _client(core) as http:
        url = f"/api/webhooks/local/{job.id}/{core.jobs.get(job.id).callback_token}"
        assert (await http.post(url, content=payload, headers=headers)).status_code == 422
    assert core.jobs.get(job.id).status == JobStatus.SUBMITTED
    await core.pipeline.apply(job.id, TaskUpdate("local-task-1", JobStatus.COMPLETED, (update_url,)))
    failed = core.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error == "The result is not a valid image"


LOOPBACK_3000 = ("http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000")


@pytest.mark.parametrize(
    ("base_url", "origins"),
    [
        ("", LOOPBACK_3000),
        ("http://[::1]:5000/", ("http://localhost:5000", "http://127.0.0.1:5000", "http://[::1]:5000", *LOOPBACK_3000)),
        ("https://canvas.example.com/", ("https://canvas.example.com", *LOOPBACK_3000)),
        ("http://192.168.1.5:3000", ("http://192.168.1.5:3000", *LOOPBACK_3000)),
        # A tunnel for webhooks, and the app opened on the laptop itself.
        ("https://abc.trycloudflare.com", ("https://abc.trycloudflare.com", *LOOPBACK_3000)),
    ],
)
def test_only_the_apps_own_pages_may_open_its_websocket(base_url: str, origins: tuple[str, ...]) -> None:
    assert Settings(public_base_url=base_url).allowed_origins == origins


def test_allowed_origins_adds_other_sites_written_as_browsers_send_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", " http://Canvas.LAN:3000/ , https://team.example.com")
    monkeypatch.setenv("PORT", "4000")
    origins = Settings().allowed_origins
    assert origins[-2:] == ("http://canvas.lan:3000", "https://team.example.com")
    assert "http://localhost:4000" in origins and "http://evil.example" not in origins
    monkeypatch.setenv("ALLOWED_ORIGINS", "canvas.lan")
    with pytest.raises(ValueError, match=r"ALLOWED_ORIGINS: 'canvas\.lan' is not an http"):
        Settings()


async def test_the_local_providers_outputs_need_their_signed_url(core: Core, node_id: int) -> None:
    view = await core.pipeline.generate(node_id)
    await job_reaches(core, view.id, *TERMINAL)
    with core.db.session() as session:
        result_url = session.exec(select(LocalTask.result_url)).one()
    assert result_url and "?sig=" in result_url
    path = result_url.removeprefix("http://testapp")
    async with _client(core) as http:
        assert (await http.get(path)).headers["content-type"] == "image/png"
        assert (await http.get(path.split("?")[0])).status_code == 404
        assert (await http.get(path.split("?")[0] + "?sig=" + "0" * 64)).status_code == 404
