"""Who may read or change what: the one place the rules live.

Every project has one owner, and may be shared with other accounts as `editor` (everything
but deleting it or changing its members) or `viewer` (sees everything, changes nothing).
A check on a project the user is no member of raises `NotFound`, the same as for a row
that does not exist, so nobody learns which ids belong to someone else; a member asking
for more than their role allows gets `NotAllowed`. Images are visible to whoever was
granted them (their uploader) and to the members of every project that uses them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qs

from sqlmodel import Session, col, or_, select

from core.db import SessionFactory, get_or_404, insert_or_ignore
from core.errors import NotAllowed, NotFound
from core.media.store import MEDIA_PREFIX
from models.tables import Job, MediaGrant, Membership, Node, Project, ProjectMedia

MEDIA_LINK_TTL_S = 3600


class Role(StrEnum):
    """What a member may do in a project, in increasing order of rights."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


#: The roles the owner can give; there is one owner, the project's creator.
SHARED_ROLES = (Role.EDITOR, Role.VIEWER)


class Access:
    def __init__(self, session_factory: SessionFactory, reads: SessionFactory) -> None:
        self._session = session_factory
        #: Every check reads here: an action's check (each click) and an image request never
        #: queue for SQLite's write lock behind the writes in flight.
        self._reads = reads

    def project(self, user_id: int, project_id: int) -> Role:
        """The user's role in the project (any role may read it)."""
        with self._reads() as session:
            return _role(session, user_id, project_id)

    def node(self, user_id: int, node_id: int) -> int:
        """The node's project id, when the user may read the project."""
        with self._reads() as session:
            node = get_or_404(session, Node, node_id)
            _role(session, user_id, node.project_id)
            return node.project_id

    def job(self, user_id: int, job_id: str) -> int:
        """The job's project id, when the user may read the project."""
        with self._reads() as session:
            job = get_or_404(session, Job, job_id)
            _role(session, user_id, job.project_id)
            return job.project_id

    def may_act(
        self,
        user_id: int,
        project_id: int,
        *,
        node_id: int = 0,
        job_id: str = "",
        image_url: str = "",
        need: Role = Role.EDITOR,
    ) -> Role:
        """The user's role, unless they may not change `project_id` through the node or job named.

        Raises `NotFound` when the user is no member or the node or job is not in the project,
        `NotAllowed` when their role is below `need` (changes need an editor; sharing, the owner).
        An image the action adds must be one the user may see.
        """
        with self._reads() as session:
            if node_id:
                actual = get_or_404(session, Node, node_id).project_id
            elif job_id:
                actual = get_or_404(session, Job, job_id).project_id
            else:
                actual = project_id
            role = _role(session, user_id, actual)
            if actual != project_id:
                raise NotFound(f"{'Node' if node_id else 'Job'} {node_id or job_id} not found")
        if role.rank < need.rank:
            if need is Role.OWNER:
                raise NotAllowed("Only the project's owner can do that")
            raise NotAllowed("You can view this project but not change it")
        if image_url and not self.may_see_media(user_id, image_url):
            raise NotFound("That image is not one of yours")
        return role

    def may_see_media(self, user_id: int, url_or_name: str) -> bool:
        """Granted to the user, or used in a project they own or are a member of."""
        name = url_or_name.removeprefix(MEDIA_PREFIX)
        with self._reads() as session:
            if session.get(MediaGrant, (name, user_id)) is not None:
                return True
            owned = select(Project.id).where(Project.owner_id == user_id)
            shared = select(Membership.project_id).where(Membership.user_id == user_id)
            used = select(ProjectMedia.project_id).where(
                ProjectMedia.name == name,
                or_(col(ProjectMedia.project_id).in_(owned), col(ProjectMedia.project_id).in_(shared)),
            )
            return session.exec(used.limit(1)).first() is not None

    def grant_media(self, user_id: int, url_or_name: str) -> None:
        with self._session() as session:
            _grant(session, user_id, url_or_name)


def _grant(session: Session, user_id: int, url_or_name: str) -> None:
    # The same image stored twice at once (same content, same name) needs one grant.
    insert_or_ignore(session, MediaGrant, name=url_or_name.removeprefix(MEDIA_PREFIX), user_id=user_id)


def use_media(session: Session, project_id: int, urls: list[str]) -> None:
    """Record that the project uses these stored images (a result made there, an input added
    there), in the caller's transaction: its members, present and future, may see them."""
    for name in {url.removeprefix(MEDIA_PREFIX) for url in urls}:
        insert_or_ignore(session, ProjectMedia, name=name, project_id=project_id)


def _role(session: Session, user_id: int, project_id: int) -> Role:
    project = session.get(Project, project_id)
    if project is not None:
        if project.owner_id == user_id:
            return Role.OWNER
        member = session.get(Membership, (project_id, user_id))
        if member is not None:
            return Role(member.role)
    raise NotFound(f"Project {project_id} not found")


class MediaPasses:
    """Recent yeses to "may this browser session see this image", kept in this process.

    A page draws dozens of images (cards, history, queue, picker, each in several sizes), and
    each request asked the database twice (the session, then the grant). A yes is kept for
    `ttl_s`; it can only turn into a no when a membership changes (grants and a project's
    images are only ever added), and every worker hears those through the change feed and calls
    `forget_user`, so a removed member loses the images at once. A session signed out in
    another tab may still load images it was allowed in the last `ttl_s`.
    """

    def __init__(self, ttl_s: float = 60.0, limit: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self._limit = limit
        #: (session token, original image name) -> (user id, valid until, monotonic).
        self._passes: dict[tuple[str, str], tuple[int, float]] = {}

    def admits(self, token: str, name: str, now: float | None = None) -> bool:
        held = self._passes.get((token, name))
        return held is not None and held[1] > (now if now is not None else time.monotonic())

    def remember(self, token: str, name: str, user_id: int, now: float | None = None) -> None:
        if len(self._passes) >= self._limit:
            self._passes.clear()  # a bound, not a policy: the next requests ask the database again
        self._passes[(token, name)] = (user_id, (now if now is not None else time.monotonic()) + self.ttl_s)

    def forget_user(self, user_id: int) -> None:
        """The user's memberships changed: their next image requests are decided afresh."""
        self._passes = {key: held for key, held in self._passes.items() if held[0] != user_id}


class MediaLinks:
    """Expiring signed links to stored images, for providers that fetch our inputs.

    A provider has no session; the link's signature is its permission, for one
    image and for `MEDIA_LINK_TTL_S`.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, path: str, ttl_s: int = MEDIA_LINK_TTL_S, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + ttl_s)
        return f"{path}?exp={expires}&sig={self._signature(path.removeprefix(MEDIA_PREFIX), expires)}"

    def verify(self, name: str, query: str, now: float | None = None) -> bool:
        params = parse_qs(query)
        expires, signature = params.get("exp", [""])[0], params.get("sig", [""])[0]
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(name, int(expires)), signature)

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path) -> bytes:
    """The app's signing secret: SECRET_KEY, or a random one kept in the data dir across restarts."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    try:
        os.link(draft, path)  # atomic: the first worker to start wins, complete
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes()
