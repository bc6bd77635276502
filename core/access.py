"""Who may read or change what. Every project has one owner; images belong to people.

A check that fails raises `NotFound`, the same as for a row that does not exist,
so nobody learns which ids belong to someone else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs

from sqlmodel import Session

from core.db import SessionFactory, get_or_404, insert_or_ignore
from core.errors import NotFound
from core.media import MEDIA_PREFIX
from models.tables import Job, MediaGrant, Node, Project

MEDIA_LINK_TTL_S = 3600


class Access:
    def __init__(self, session_factory: SessionFactory) -> None:
        self._session = session_factory

    def project(self, user_id: int, project_id: int) -> None:
        with self._session() as session:
            _owned(session, user_id, project_id)

    def node(self, user_id: int, node_id: int) -> int:
        """The node's project id, when the user owns it."""
        with self._session() as session:
            node = get_or_404(session, Node, node_id)
            _owned(session, user_id, node.project_id)
            return node.project_id

    def job(self, user_id: int, job_id: str) -> int:
        """The job's project id, when the user owns it."""
        with self._session() as session:
            job = get_or_404(session, Job, job_id)
            _owned(session, user_id, job.project_id)
            return job.project_id

    def may_act(
        self, user_id: int, project_id: int, *, node_id: int = 0, job_id: str = "", image_url: str = ""
    ) -> None:
        """Raise `NotFound` unless the user may change `project_id` through the node or job named.

        A node or job in the project proves the user owns the project: one check, not two.
        An image the action adds must be one the user was granted.
        """
        if node_id:
            in_project = self.node(user_id, node_id) == project_id
        elif job_id:
            in_project = self.job(user_id, job_id) == project_id
        else:
            self.project(user_id, project_id)
            in_project = True
        if not in_project:
            raise NotFound(f"{'Node' if node_id else 'Job'} {node_id or job_id} not found")
        if image_url and not self.may_see_media(user_id, image_url):
            raise NotFound("That image is not one of yours")

    def may_see_media(self, user_id: int, url_or_name: str) -> bool:
        name = url_or_name.removeprefix(MEDIA_PREFIX)
        with self._session() as session:
            return session.get(MediaGrant, (name, user_id)) is not None

    def grant_media(self, user_id: int, url_or_name: str) -> None:
        with self._session() as session:
            _grant(session, user_id, url_or_name)


def grant_media_to_owner(session: Session, project_id: int, url_or_name: str) -> None:
    """Let the project's owner see an image made in it, in the caller's transaction (the result's own)."""
    _grant(session, get_or_404(session, Project, project_id).owner_id, url_or_name)


def _grant(session: Session, user_id: int, url_or_name: str) -> None:
    # The same image stored twice at once (same content, same name) needs one grant.
    insert_or_ignore(session, MediaGrant, name=url_or_name.removeprefix(MEDIA_PREFIX), user_id=user_id)


def _owned(session: Session, user_id: int, project_id: int) -> None:
    project = session.get(Project, project_id)
    if project is None or project.owner_id != user_id:
        raise NotFound(f"Project {project_id} not found")


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
